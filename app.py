"""medsam app: `python app.py [--data DIR] [--port N]` (also the Hugging Face Space entry point)."""

import argparse
import logging
import signal

from medsam.examples import data_dir
from medsam.ui import build, launch_kwargs, queue_kwargs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="benchmark folder with manifest.csv, for examples (default: $MEDSAM_DATA)")
    parser.add_argument("--host", default=None, help="address to listen on (default: Gradio's)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or $GRADIO_SERVER_PORT)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    # Stop on SIGTERM as on Ctrl+C: Gradio closes the server, then exit handlers delete temporary files.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    build(data_dir(args.data)).queue(**queue_kwargs()).launch(
        server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main()
