"""medsam app: `python app.py [--data DIR] [--port N]` (also the Hugging Face Space entry point)."""

import argparse
import logging

from medsam.examples import data_dir
from medsam.ui import build, launch_kwargs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="benchmark folder with manifest.csv, for examples (default: $MEDSAM_DATA)")
    parser.add_argument("--host", default=None, help="address to listen on (default: Gradio's)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or $GRADIO_SERVER_PORT)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    build(data_dir(args.data)).queue(default_concurrency_limit=1, max_size=64).launch(
        server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main()
