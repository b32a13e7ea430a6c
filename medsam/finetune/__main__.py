"""``python -m medsam.finetune {decoder,evaluate,per-dataset,heads,heads3d,calibrate,filters} ...``: train,
evaluate, per-dataset vs pooled, the AutoSAM heads (label efficiency in images, and in volumes scored
in 3D), IoU-head calibration and everything-mode filters."""

import sys

USAGE = ("usage: python -m medsam.finetune {decoder,evaluate,per-dataset,heads,heads3d,calibrate,filters} "
         "[options]  (add --help after one)")


def main() -> None:
    command, argv = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "decoder":
        from .decoder import main as run
    elif command == "evaluate":
        from .evaluate import main as run
    elif command == "per-dataset":
        from .per_dataset import main as run
    elif command == "heads":
        from .heads import main as run
    elif command == "heads3d":
        from .heads3d import main as run
    elif command == "calibrate":
        from .calibrate import main as run
    elif command == "filters":
        from .filters import main as run
    else:
        raise SystemExit(USAGE)
    run(argv)


if __name__ == "__main__":
    main()
