"""Where and how a model runs (device, precision, memory layout, compilation), plus seeding and
thread settings shared by training and inference."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random

import numpy as np
import torch

from hybrid.errors import ConfigError
from hybrid.util.memory import peak_rss_mb

# "16" is float16 autocast with a gradient scaler; CUDA only (CPU kernels for it are slow or missing).
PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
CUDA_ONLY_PRECISIONS = ("16",)


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a clear error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA device is available; use auto or cpu")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ConfigError(f"trainer.device={name!r}; choose auto, cpu or cuda[:N]")
    return torch.device(name)


def precision_key(precision) -> str:
    """Normalize ``trainer.precision`` (Hydra may give the int 32) and check it."""
    key = str(precision)
    if key not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r}; choose one of {list(PRECISIONS)}")
    return key


def check_precision(precision, device: torch.device) -> str:
    """:func:`precision_key`, refusing float16 where it does not run (anywhere but CUDA)."""
    key = precision_key(precision)
    if key in CUDA_ONLY_PRECISIONS and device.type != "cuda":
        raise ConfigError(f"trainer.precision={precision} (float16) needs a CUDA device; use bf16 on {device.type}")
    return key


def autocast(device: torch.device, precision) -> contextlib.AbstractContextManager:
    """Mixed precision context for ``bf16``; a no-op for full precision."""
    dtype = PRECISIONS[precision_key(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """This process's random states (Python, NumPy, torch CPU and CUDA) as plain lists and tensors,
    so a checkpoint holding them still loads with ``weights_only=True``."""
    version, internal, gauss = random.getstate()
    key, pos, has_gauss, cached = np.random.get_state()[1:]
    state = {
        "python": [version, list(internal), gauss],
        "numpy": {"key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` recorded (CUDA states only when the device count matches)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    np.random.set_state(("MT19937", np.array(npy["key"], np.uint32), npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def configure_process(num_threads: int | None) -> None:
    """Process-wide CPU settings of every run: torch's intra-op threads (``null`` keeps torch's
    default, one per core) and :func:`retain_freed_memory`."""
    if num_threads:
        torch.set_num_threads(int(num_threads))
    retain_freed_memory()


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
RETAINED_BLOCK_BYTES = 1 << 30


def retain_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 1 GiB in the heap for reuse (``False`` where the C
    library is not glibc).

    By default glibc serves every block above 32 MiB with a fresh ``mmap`` and unmaps it on free,
    so each forward pass faults in and zeroes its large activations (a batch of 16 at 480 px holds
    several of 100+ MiB) again: with the blocks kept, ``python -m hybrid.jobs.benchmark`` measured CPU
    float32 batch-16 inference 1.95x faster (what jemalloc / tcmalloc do for PyTorch's CPU guide).
    """
    if os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl and other C libraries have no mallopt of this kind
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, RETAINED_BLOCK_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, 2 * RETAINED_BLOCK_BYTES)
    )


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: allocated CUDA memory, or the process's resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


class Runtime:
    """Where and how the model runs: device, precision (autocast), channels-last memory layout and
    ``torch.compile``. Batches arrive ready for it from :mod:`hybrid.data` (normalized, on the
    device, in the same layout)."""

    def __init__(self, device: str, precision, *, channels_last: bool = False, compile: bool = False):
        self.device = select_device(device)
        self.precision = check_precision(precision, self.device)
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)

    @classmethod
    def from_config(cls, trainer_cfg) -> Runtime:
        """The runtime a ``trainer`` config (or its typed settings) describes."""
        return cls(
            trainer_cfg.device,
            trainer_cfg.precision,
            channels_last=trainer_cfg.channels_last,
            compile=trainer_cfg.compile,
        )

    @property
    def computed_in(self) -> str:
        """Where and at which precision figures are computed, for the logs (``cpu, bf16 autocast``)."""
        precision = "float32" if PRECISIONS[self.precision] is None else f"{self.precision} autocast"
        return f"{self.device.type}, {precision}"

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move the model to the device, in channels-last layout and compiled when asked.

        ``Module.compile`` compiles in place, so ``state_dict`` keys (and checkpoints) are unchanged.
        """
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model.compile()
        return model
