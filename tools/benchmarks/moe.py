"""Forward plus backward of the MoE layer against a dense SwiGLU with the same active parameters.

``python tools/bench.py moe``. Sizes are those of lab 2's presets (from :mod:`effllm.presets`,
which the lab and its unit tests read too): one
batch of ``batch * seq_len`` tokens through one MoE layer, and through a dense
:class:`~effllm.layers.FeedForward` whose hidden size is the MoE's active hidden size
(K_r + N_s) * d_expert. Both run on the CPU, at the CPU preset's sizes (the goal) and at the
GPU preset's (where the router and the dispatch weigh less against the matrix multiplies). An
MoE that computed every expert would cost about (N_r + N_s) / (K_r + N_s) times the dense layer;
the goal for the grouped dispatch is 1.3x.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from effllm import presets, runtime
from effllm.layers import FeedForward
from effllm.moe import MoE


def step_ms(layer: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int = 3) -> list[float]:
    """Milliseconds of each of ``repeats`` forward + backward passes; x: (tokens, d_model)."""
    if repeats <= 0:
        raise ValueError(f"repeats must be positive, got {repeats}")
    x = x.detach().requires_grad_(True)
    grad = torch.randn_like(x)
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        layer(x).backward(grad)
        if i >= warmup:
            times.append(1e3 * (time.perf_counter() - t0))
        layer.zero_grad(set_to_none=True)
        x.grad = None
    return times


def compare(
    d_model: int, moe: MoE, tokens: int, repeats: int = 30, rounds: int = 5
) -> dict[str, float]:
    """Median ms per forward + backward of ``moe`` and of its equal-active dense FeedForward.

    The two layers take turns for ``rounds`` rounds of ``repeats`` passes each, so that load
    from other processes on a shared machine falls on both alike.
    """
    dense = FeedForward(d_model, moe.cfg.active_hidden)
    x = torch.randn(tokens, d_model)
    layers: dict[str, Callable] = {"moe": moe, "dense": dense}
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(rounds):
        for name, layer in layers.items():
            times[name] += step_ms(layer, x, repeats)
    out = {name: statistics.median(t) for name, t in times.items()}
    out["ratio"] = out["moe"] / out["dense"]
    return out


def describe_row(name: str, d_model: int, moe: MoE, tokens: int, res: dict[str, float]) -> str:
    m = moe.cfg
    return (
        f"{name:<4} {tokens:>6} {d_model:>7}  {m.n_shared} + {m.top_k:>2} of {m.n_routed:>3} x "
        f"{m.d_expert:<4} {m.active_hidden:>6} {res['moe']:>9.2f} {res['dense']:>9.2f} "
        f"{res['ratio']:>6.2f}x"
    )


def run() -> str:
    """The ratio at both presets' sizes, on one CPU thread as lab 2 runs."""
    with runtime.cpu_threads(1):
        return _report()


def _report() -> str:
    lines = [
        f"forward + backward on the CPU, torch threads {torch.get_num_threads()}; medians; "
        "dense = SwiGLU with the MoE's active hidden units",
        "size tokens d_model  experts (shared + top-k of routed x d_expert)  dense hidden"
        "    MoE ms  dense ms  ratio",
    ]
    for name in ("cpu", "gpu"):  # the lab's sizes, then its GPU preset's sizes (on the CPU)
        P = presets.PRESETS["moe"][name]
        cfg = P.models()["moe"]
        tokens = P.batch * P.seq_len
        torch.manual_seed(0)
        moe = MoE(cfg.d_model, cfg.moe)
        repeats = 30 if name == "cpu" else 5
        res = compare(cfg.d_model, moe, tokens, repeats=repeats)
        lines.append(describe_row(name, cfg.d_model, moe, tokens, res))
    lines.append(
        "goal: ratio <= 1.3x at the lab's (cpu) size; computing every expert for every token "
        "would cost about (N_r + N_s) / (K_r + N_s) times the dense layer"
    )
    return "\n".join(lines)
