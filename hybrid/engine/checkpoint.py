"""The checkpoint record and its one reader/writer.

:class:`CheckpointRecord` is everything a checkpoint file holds: the resolved config and class names
(so ``infer.py ckpt_path=...`` needs nothing else), the weights, the training state a resumed run
continues from, and the tuned decision threshold. Files are written atomically and read without
executing anything (``weights_only``). :class:`CheckpointSaver` owns a run's ``checkpoints/`` folder
(``best.pt``, ``last.pt``): which file is written when, by which process.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hybrid.data.schema import DataSchema
from hybrid.engine.hooks import HookBase
from hybrid.engine.schema import TrainerSchema
from hybrid.errors import CheckpointError
from hybrid.models.schema import ARCHITECTURES, model_schema
from hybrid.models.structure import reshape_for_task, reshape_modules
from hybrid.util.atomic import atomic_write
from hybrid.util.ranks import rank_zero_only
from hybrid.util.typed_config import with_defaults

FORMAT = "hybrid-checkpoint"
VERSION = 2
# Keys of version-1 files that the record names differently now.
RENAMED_KEYS = {"wandb_run_id": "tracker_run_id"}
# The groups of a checkpoint's config completed from their schemas (the model's: by its name).
GROUP_SCHEMAS = {"data": DataSchema, "trainer": TrainerSchema}


def upgrade_config(config: dict) -> dict:
    """The resolved config of a checkpoint, with every key today's code reads: a key added since the
    file was written takes its schema's default (the meaning it had before it existed)."""
    upgraded = dict(config)
    for group, values in config.items():
        if not isinstance(values, dict):
            continue
        if group in GROUP_SCHEMAS:
            upgraded[group] = with_defaults(values, GROUP_SCHEMAS[group])
        elif group == "model" and values["name"] in ARCHITECTURES:
            upgraded[group] = with_defaults(values, model_schema(values["name"]))
    return upgraded


@dataclass
class CheckpointRecord:
    """One checkpoint. ``epoch`` is the last *completed* epoch; ``interrupted_epoch`` /
    ``interrupted_step`` / ``epoch_progress`` mark a file written when SIGTERM / SIGINT stopped an
    epoch part-way, with the weights, optimizer, schedule and random states of that step."""

    config: dict = field(default_factory=dict)  # the resolved training config
    class_names: list[str] = field(default_factory=list)
    task: str = ""
    negative_class: str | None = (
        None  # the class meaning "no defect" (None: none, or a file from before it was recorded)
    )
    model: dict = field(default_factory=dict)  # the model's state dict
    epoch: int = 0
    monitor: str | None = None
    best_value: float | None = None
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    skipped_images: list[str] = field(default_factory=list)
    optimizer: dict | None = None
    scheduler: dict | None = None
    scaler: dict | None = None  # float16's gradient scaler
    rng: list[dict] | None = None  # one entry per rank
    world_size: int = 1
    tracker_run_id: str | None = None  # a resumed run continues its tracker run
    threshold: float | list[float] | None = None  # tuned on validation (trainer.tune_threshold; a list per class)
    interrupted_epoch: int | None = None
    interrupted_step: int | None = None
    epoch_progress: list[dict] | None = None  # per rank: the interrupted epoch's steps and running sums
    structure: dict | None = None  # layer sizes (hybrid.models.structure): a pruned model's architecture
    ema: dict | None = None  # trainer.ema: the weight average's state (last.pt; best.pt serves it as ``model``)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the record to ``path`` through a temporary file, so a crash never leaves half a file."""
        payload = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self)}
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | os.PathLike, key: str = "ckpt_path") -> CheckpointRecord:
        """Read a hybrid checkpoint onto the CPU, or raise :class:`CheckpointError` saying why not
        (naming the config ``key`` that gave the path)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{key}={path}: no such file")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for foreign or corrupt files
            raise CheckpointError(f"{key}={path}: not a readable checkpoint ({type(err).__name__})") from err
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(f"{key}={path}: not a hybrid checkpoint (no '{FORMAT}' marker)")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {RENAMED_KEYS.get(key, key): value for key, value in payload.items()}
        values["config"] = upgrade_config(dict(values.get("config") or {}))
        return cls(**{key: value for key, value in values.items() if key in known})

    def load_weights_into(self, model: torch.nn.Module, path: str | os.PathLike) -> None:
        """Load the record's weights (read from ``path``), with a clear message when they do not fit;
        a pruned model's layers take the recorded sizes first."""
        if self.structure:
            reshape_modules(model, self.structure, self.model)
        try:
            model.load_state_dict(self.model)
        except RuntimeError as err:
            first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
            raise CheckpointError(f"ckpt_path={path}: weights do not fit the configured model ({first})") from err

    def load_fitting_weights(self, model: torch.nn.Module, *, same_architecture: bool = True) -> list[str]:
        """Copy into ``model`` every weight of the record whose name and shape fit it (fine-tuning
        from another run: a binary model's weights into a multi-label one keep all but the head);
        return the names of ``model``'s weights left as they were. With ``same_architecture`` the
        record's layer sizes are applied first (a pruned model's); a model of another capacity
        keeps its own and takes only the weights that fit it."""
        if self.structure and same_architecture:
            reshape_for_task(model, self.structure, self.model)
        own = model.state_dict()
        fitting = {name: value for name, value in self.model.items() if name in own and own[name].shape == value.shape}
        model.load_state_dict(fitting, strict=False)
        return sorted(set(own) - set(fitting))


class CheckpointSaver:
    """A run's ``checkpoints/`` folder: ``best.pt`` (best monitored value) and ``last.pt`` (the end
    of every epoch, or the step an interruption stopped at). Rank 0 writes; the others hold the
    same weights."""

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / "checkpoints"

    @staticmethod
    def run_dir_of(checkpoint: str | os.PathLike) -> Path:
        """The run dir a checkpoint file of this layout belongs to (``<run>/checkpoints/last.pt``)."""
        return Path(checkpoint).expanduser().resolve().parent.parent

    @property
    def best(self) -> Path:
        """``best.pt``."""
        return self.folder / "best.pt"

    @property
    def last(self) -> Path:
        """``last.pt``."""
        return self.folder / "last.pt"

    @rank_zero_only
    def save_epoch(self, record: CheckpointRecord, *, improved: bool, best: CheckpointRecord | None = None) -> None:
        """The end of an epoch: ``best.pt`` first when it improved (``best``: another record to
        serve, e.g. with the EMA weights; default ``record``), then ``last.pt``, so a crash between
        the two never leaves ``last.pt`` claiming a ``best.pt`` that was not written."""
        if improved:
            (best or record).save(self.best)
        record.save(self.last)

    @rank_zero_only
    def save_interrupted(self, record: CheckpointRecord, *, epoch: int, step: int) -> None:
        """``last.pt`` for a run stopped in ``epoch`` after ``step`` optimizer steps."""
        dataclasses.replace(record, interrupted_epoch=epoch, interrupted_step=step).save(self.last)

    @rank_zero_only
    def record_threshold(self, threshold: float | list[float]) -> None:
        """Store a decision threshold tuned after training in ``best.pt``, which inference reads."""
        dataclasses.replace(CheckpointRecord.load(self.best), threshold=threshold).save(self.best)


class CheckpointHook(HookBase):
    """Checkpoints as a hook: each epoch's record as ``best.pt`` (when it improved; the trainer's
    ``best_weights``, e.g. the weight average, when set) then ``last.pt``, and a mid-epoch
    ``last.pt`` when a stop signal ends an epoch."""

    def __init__(self, saver: CheckpointSaver):
        self.saver = saver

    def after_record(self, record: CheckpointRecord, *, improved: bool) -> None:
        weights = self.trainer.best_weights
        best = dataclasses.replace(record, model=weights()) if weights is not None else None
        self.saver.save_epoch(record, improved=improved, best=best)

    def after_interrupt(self, record: CheckpointRecord, *, epoch: int, step: int) -> None:
        self.saver.save_interrupted(record, epoch=epoch, step=step)
