"""Where a lab runs: scale preset, device and seeds.

Every lab has two real configurations of the same code: a ``cpu`` preset (the default, and the
one ``pytest --nbval`` runs: well under two minutes on two cores) and a bigger ``gpu`` preset,
chosen automatically when CUDA is available. ``EFFLLM_PRESET=cpu`` or ``EFFLLM_PRESET=gpu``
forces either one.
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from effllm.validate import non_negative_int, positive_int

PRESET_ENV = "EFFLLM_PRESET"
PRESET_NAMES = ("cpu", "gpu")

T = TypeVar("T")


def preset_name(environ: Mapping[str, str] | None = None) -> str:
    """The preset to run: ``$EFFLLM_PRESET`` if set, else ``"gpu"`` with CUDA, else ``"cpu"``.

    Raises ValueError for an unknown name in the environment variable.
    """
    environ = os.environ if environ is None else environ
    forced = environ.get(PRESET_ENV, "").strip().lower()
    if forced:
        if forced not in PRESET_NAMES:
            raise ValueError(
                f"{PRESET_ENV}={environ[PRESET_ENV]!r} is not a preset; "
                f"use one of {', '.join(PRESET_NAMES)} (or unset it to choose automatically)"
            )
        return forced
    return "gpu" if torch.cuda.is_available() else "cpu"


def select_preset(presets: Mapping[str, T], name: str | None = None) -> tuple[str, T]:
    """Pick one configuration from ``presets`` (a mapping with ``"cpu"`` and ``"gpu"`` keys).

    ``name`` overrides the automatic choice. Returns ``(name, config)``. Forcing the GPU preset
    on a machine without CUDA is allowed (the unit tests do it) but warns that it will be slow.
    """
    missing = [p for p in PRESET_NAMES if p not in presets]
    if missing:
        raise ValueError(f"presets must define {PRESET_NAMES}; missing {missing}")
    chosen = preset_name() if name is None else name.strip().lower()
    if chosen not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
    if chosen == "gpu" and not torch.cuda.is_available():
        warnings.warn(
            "running the GPU preset without CUDA: this is the large configuration on the CPU "
            "and will be slow",
            stacklevel=2,
        )
    return chosen, presets[chosen]


def device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Precision:
    """How a training loop computes: in float32, or in mixed precision under autocast.

    ``dtype`` None means float32 throughout (the CPU presets: exact and reproducible). With
    ``torch.float16`` or ``torch.bfloat16``, matrix multiplications run in that type while the
    weights, the optimiser state and the loss stay in float32; float16's narrow range needs a
    gradient scaler (:attr:`needs_scaler`), bfloat16's does not.
    """

    device_type: str
    dtype: torch.dtype | None = None

    def autocast(self) -> AbstractContextManager:
        """The context to run a forward pass in."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, active only where the type needs one (float16)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


def precision(dev: torch.device | None = None, mixed: bool = True) -> Precision:
    """The labs' choice: mixed precision on a CUDA GPU, float32 elsewhere.

    On a GPU with bfloat16 (Ampere and later) autocast uses it; on older ones, such as Colab's
    free T4, float16 with a gradient scaler. ``mixed=False`` keeps float32 everywhere.
    """
    dev = dev or device()
    if dev.type != "cuda" or not mixed:
        return Precision(dev.type)
    return Precision("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def tiny_model_threads(dev: torch.device | None = None) -> int:
    """On the CPU, compute with one intra-op thread; return the number of threads now in use.

    The labs' models multiply matrices a few dozen columns wide. A second thread costs more in
    synchronisation than it saves, and on a busy machine the two threads of one process wait on
    each other: lab 3 once took 1.5 minutes on one thread and 8 on two, on two loaded cores.
    On a GPU this changes nothing.
    """
    if (dev or device()).type == "cpu":
        torch.set_num_threads(1)
    return torch.get_num_threads()


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads, then restore the count (for benchmarks)."""
    n = positive_int("the number of threads", n)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way.

    On the CPU this makes a lab's numbers repeat exactly from run to run on the same machine.
    """
    seed = non_negative_int("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def describe(preset: str | None = None) -> str:
    """One line saying where the lab runs, for the first cell's output."""
    dev = device()
    where = torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or "CPU"
    parts = [
        f"preset={preset or preset_name()}",
        f"device={dev.type} ({where})",
        f"torch={torch.__version__}",
        f"threads={torch.get_num_threads()}",
    ]
    return ", ".join(parts)
