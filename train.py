"""Train the hybrid model: ``python train.py [overrides]`` (see README); the same as ``hybrid train``."""

import sys

from hybrid.jobs.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog=sys.argv[0]))
