"""Train the hybrid model: ``python train.py [overrides]`` (see README); the same as ``hybrid train``."""

import sys

from hybrid.apps import train_main

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:], prog=sys.argv[0]))
