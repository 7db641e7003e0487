"""Predict with a trained checkpoint: ``python infer.py ckpt_path=P [input=FOLDER] [overrides]``;
the same as ``hybrid infer``."""

import sys

from hybrid.apps import infer_main

if __name__ == "__main__":
    sys.exit(infer_main(sys.argv[1:], prog=sys.argv[0]))
