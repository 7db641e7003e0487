"""Predict with a trained checkpoint: ``python infer.py ckpt_path=P [input=FOLDER] [overrides]``;
the same as ``hybrid infer``."""

import sys

from hybrid.jobs.infer import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog=sys.argv[0]))
