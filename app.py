"""medsam app: `python app.py [--data DIR] [--port N]` (also the Hugging Face Space entry point)."""

import argparse
import logging
import signal

from medsam.gallery import all_examples, data_dir
from medsam.ui import build, default_models, launch_kwargs, queue_kwargs
from medsam.warmup import warm_in_background, warm_order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="benchmark folder with manifest.csv, for examples (default: $MEDSAM_DATA)")
    parser.add_argument("--host", default=None, help="address to listen on (default: Gradio's)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or $GRADIO_SERVER_PORT)")
    parser.add_argument("--no-warmup", action="store_true", help="do not encode the examples in the background")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    # Stop on SIGTERM as on Ctrl+C: Gradio closes the server, then exit handlers delete temporary files.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    data = data_dir(args.data)
    demo = build(data)
    if not args.no_warmup:  # the page's models, then the other ready ones: visitors wait for the decoder only
        warm_in_background(all_examples(data), warm_order(default_models()))
    demo.queue(**queue_kwargs()).launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main()
