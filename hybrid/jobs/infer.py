"""``hybrid infer`` (``infer.py``): predict with a checkpoint or an exported ``.onnx``: the trained
test split, a folder of images, or inspection videos (:mod:`hybrid.inference`)."""

from __future__ import annotations

import sys

from hybrid.inference import infer
from hybrid.jobs.app import HydraJob

main = HydraJob("infer", infer)

if __name__ == "__main__":
    sys.exit(main())
