"""``hybrid synthetic-video out=DIR [key=value ...]``: write synthetic inspection videos and their
truth (:mod:`hybrid.data.synthetic.pipe_videos`)."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from hybrid.data.synthetic.pipe_videos import VideoSpec, generate
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import VideoJobSchema
from hybrid.util.cli import spec_from
from hybrid.util.typed_config import typed_config


def write_videos(cfg: DictConfig) -> Path:
    """The job: the videos ``cfg``'s spec describes, written into ``cfg.out``."""
    job = typed_config(cfg, VideoJobSchema)
    out = generate(Path(job.out).expanduser(), spec_from(VideoSpec, vars(job)))
    print(out)
    return out


# hybrid synthetic-video DIR: a first word without `=` is the output folder
main = HydraJob("synthetic_video", write_videos, first_key="out", keys=VideoJobSchema)

if __name__ == "__main__":
    sys.exit(main())
