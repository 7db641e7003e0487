"""What every kind of inference input starts from: the job's keys checked, the model file opened
once, the data config it was trained with (``data.*`` overrides applied) and the run dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from hybrid.data.schema import DataSchema, trained_data_settings
from hybrid.deploy.serving import ServedModel, ServingOptions, load_served_model
from hybrid.engine.evaluation import two_stage_strategy
from hybrid.engine.runtime import configure_process
from hybrid.errors import ConfigError
from hybrid.inference.schema import InferSchema, infer_settings
from hybrid.util.hydra_job import command_line_overrides
from hybrid.util.hydra_job import run_dir as hydra_run_dir
from hybrid.util.typed_config import check_types
from hybrid.video.sampling import find_videos

log = logging.getLogger(__name__)


@dataclass
class InferRun:
    """One inference job, ready to predict: ``cfg`` (the whole composed config, which a tracker
    records), the job's typed keys, the served model and its serving options, the data settings,
    the run dir, and ``source``: what ``input`` names (``test_split``, ``images`` or ``videos``)."""

    cfg: DictConfig
    job: InferSchema
    options: ServingOptions
    served: ServedModel
    data: DataSchema
    run_dir: Path
    source: str
    videos: list[Path]


def check_input_size(data_cfg: DataSchema, served: ServedModel, role: str) -> None:
    """The data side must produce the images the model was built for (a ``data.img_size`` or
    ``data.in_channels`` override may not)."""
    model = served.trained.model
    wanted = (int(model.in_channels), int(model.img_size))
    given = (int(data_cfg.in_channels), int(data_cfg.img_size))
    if given != wanted:
        raise ConfigError(
            f"{role} takes {wanted[0]}-channel {wanted[1]}x{wanted[1]} images, but data.in_channels={given[0]} "
            f"and data.img_size={given[1]}"
        )


def open_run(cfg: DictConfig, data_overrides: list[str] | None = None) -> InferRun:
    """Check the job's keys (a wrong name or a missing input stops before any work), open
    ``ckpt_path`` and settle the data config: the trained one with ``data_overrides`` (by default
    the command line's) applied."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: python infer.py ckpt_path=<run>/checkpoints/best.pt")
    check_types(cfg, InferSchema, "", resolve=False)
    job = infer_settings(cfg)  # the job's own keys, typed once
    two_stage_strategy(job.two_stage.strategy)  # a wrong name stops before any work
    videos = find_videos(job.input) if job.input else []  # so does a missing input
    configure_process(job.num_threads)
    options = ServingOptions.from_config(job)
    served = load_served_model(job.ckpt_path, options)
    with open_dict(cfg):
        cfg.model = served.trained.model  # data keys such as img_size interpolate the model's
    overrides = command_line_overrides() if data_overrides is None else data_overrides
    data_cfg = trained_data_settings(served.trained.data, cfg, overrides)
    check_input_size(data_cfg, served, f"ckpt_path={job.ckpt_path}")
    run_dir = hydra_run_dir(cfg)
    log.info("serving %s with %s", job.ckpt_path, served.description)
    source = "videos" if videos else "images" if job.input else "test_split"
    return InferRun(cfg, job, options, served, data_cfg, run_dir, source, videos)
