"""Forward plus backward of the MoE layer, of a loop over experts, and of a dense SwiGLU.

``python tools/bench.py moe``. Sizes are those of lab 2's presets (from :mod:`effllm.presets`,
which the lab and its unit tests read too): one batch of ``batch * seq_len`` tokens through

- the course's :class:`~effllm.moe.MoE` (pairs sorted by expert, a grouped matrix multiply);
- :class:`ExpertLoop`, the same layer written as DeepSeek-V3's reference ``MoE.forward`` writes
  it (``inference/model.py``): for every expert that received tokens, find them with ``where``,
  run the expert (its own three linear layers) on them and add its gate-weighted output back in
  place, then add the shared experts' MLP;
- a dense :class:`~effllm.layers.FeedForward` whose hidden size is the MoE's active hidden size
  (K_r + N_s) * d_expert: the same arithmetic per token, without routing.

All run on the CPU, at the CPU preset's sizes (the lab's) and at the GPU preset's (where the
router and the dispatch weigh less against the matrix multiplies). A profile of the course's
layer then splits its step into routing, dispatch, expert matrix multiplies, SwiGLU and
combine, by the ``record_function`` labels of :mod:`effllm.moe` and the operations' names;
backward operations count for the phase whose forward operation created them. Goals: MoE /
dense <= 4.0x at the lab's size, <= 1.3x at the GPU preset's, and the MoE at least twice as
fast as the loop at both.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from effllm import presets, runtime
from effllm.layers import FeedForward
from effllm.moe import PHASES, MoE


class Expert(nn.Module):
    """DeepSeek-V3's ``Expert`` (and ``MLP``): w2(silu(w1 x) * w3 x) with three linear layers.

    Weights as ``nn.Linear`` keeps them, (out, in), each expert its own parameters. Built from
    the course's layout: w1, w3 (d_model, hidden) and w2 (hidden, d_model).
    """

    def __init__(self, w1: torch.Tensor, w3: torch.Tensor, w2: torch.Tensor) -> None:
        super().__init__()
        self.w1 = nn.Parameter(w1.t().contiguous())
        self.w3 = nn.Parameter(w3.t().contiguous())
        self.w2 = nn.Parameter(w2.t().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (rows, d_model) -> (rows, d_model)"""
        return F.linear(F.silu(F.linear(x, self.w1)) * F.linear(x, self.w3), self.w2)


class ExpertLoop(nn.Module):
    """The MoE layer as DeepSeek-V3's reference ``MoE.forward`` runs it: one pass per expert.

    Same gate and same weights as ``moe`` (the gate is the course's, so both layers route alike;
    V3's calls ``torch.topk``, which picks the same experts more slowly). Like V3's code, every
    routed expert is an :class:`Expert` of its own, and the shared experts are one
    :class:`Expert` with N_s * d_expert hidden units (V3's ``MLP``), which computes the same sum.
    """

    def __init__(self, moe: MoE) -> None:
        super().__init__()
        self.gate, ns = moe.gate, moe.cfg.n_shared
        h = moe.cfg.d_expert
        w13, w2 = moe.w13.detach(), moe.w2.detach()
        w1, w3 = w13[..., :h], w13[..., h:]
        self.experts = nn.ModuleList(
            Expert(w1[i], w3[i], w2[i]) for i in range(ns, ns + moe.cfg.n_routed)
        )
        self.shared_experts = None
        if ns:
            d = w13.shape[1]
            self.shared_experts = Expert(
                w1[:ns].transpose(0, 1).reshape(d, ns * h),
                w3[:ns].transpose(0, 1).reshape(d, ns * h),
                w2[:ns].reshape(ns * h, d),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (tokens, d_model) -> (tokens, d_model)"""
        _, weights, indices = self.gate(x)
        y = torch.zeros_like(x)
        counts = torch.bincount(indices.flatten(), minlength=len(self.experts)).tolist()
        for i, expert in enumerate(self.experts):
            if counts[i] == 0:
                continue
            idx, top = torch.where(indices == i)
            y[idx] += expert(x[idx]) * weights[idx, top, None]
        if self.shared_experts is None:
            return y
        return y + self.shared_experts(x)


def step_ms(layer: nn.Module, x: torch.Tensor, repeats: int, warmup: int = 3) -> list[float]:
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
    """Median ms per forward + backward of ``moe``, its expert loop and its dense FeedForward.

    The layers take turns for ``rounds`` rounds of ``repeats`` passes each, so that load from
    other processes on a shared machine falls on all alike.
    """
    layers: dict[str, nn.Module] = {
        "moe": moe,
        "loop": ExpertLoop(moe),
        "dense": FeedForward(d_model, moe.cfg.active_hidden),
    }
    x = torch.randn(tokens, d_model)
    with torch.no_grad():  # the loop must compute what the layer computes
        torch.testing.assert_close(layers["loop"](x), moe(x), rtol=1e-4, atol=1e-5)
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(rounds):
        for name, layer in layers.items():
            times[name] += step_ms(layer, x, repeats)
    return {name: statistics.median(t) for name, t in times.items()}


# Inside the experts' step, what an operation does; gathers count as dispatch, scatters as
# combine, in either pass (the backward of a gather is a scatter and the reverse).
EXPERT_OPS = {
    "aten::mm": "expert GEMMs",
    "aten::addmm_": "expert GEMMs",
    "aten::index_select": "dispatch",
    "aten::index_add_": "combine",
}
SHARES = ("routing", "dispatch", "expert GEMMs", "SwiGLU and bookkeeping", "combine", "other")


def phase_shares(moe: MoE, x: torch.Tensor, steps: int = 10) -> dict[str, float]:
    """Share of the profiled forward + backward CPU time spent in each step of ``moe``.

    An operation belongs to the innermost :data:`effllm.moe.PHASES` label around it, or, in
    the backward pass, to the label of the forward operation that recorded it (the autograd
    sequence number links the two). Inside ``experts``, matrix multiplies are expert GEMMs,
    gathers dispatch, scatters combine, and the rest (SwiGLU's elementwise operations, the
    Python loop over experts) ``SwiGLU and bookkeeping``. Time outside any label is ``other``.
    """
    x = x.detach().requires_grad_(True)
    grad = torch.randn_like(x)
    step_ms(moe, x, 2)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            moe(x).backward(grad)
            moe.zero_grad(set_to_none=True)
    events = prof.events()

    def label_of(e) -> str | None:
        while e is not None:
            if e.name in PHASES:
                return e.name
            if e.name.startswith("autograd::engine::evaluate_function"):
                return seq_phase.get(e.sequence_nr)
            e = e.cpu_parent
        return None

    seq_phase: dict[int, str | None] = {}
    for e in events:
        if e.sequence_nr >= 0 and not e.name.startswith("autograd::"):
            seq_phase.setdefault(e.sequence_nr, label_of(e))
    total_us: dict[str, float] = defaultdict(float)
    for e in events:
        share = label_of(e) or "other"
        if share == "experts":
            op = e
            while op is not None and op.name not in EXPERT_OPS:
                op = op.cpu_parent
            share = "SwiGLU and bookkeeping" if op is None else EXPERT_OPS[op.name]
        total_us[share] += e.self_cpu_time_total
    whole = sum(total_us.values())
    return {p: total_us[p] / whole for p in SHARES}


def _report() -> str:
    lines = [
        f"forward + backward on the CPU, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of "
        "interleaved rounds; loop = DeepSeek-V3-style loop over experts; "
        "dense = SwiGLU with the MoE's active hidden units",
        "size tokens d_model  experts (shared + top-k of routed x d_expert)  dense hidden"
        "    MoE ms   loop ms  dense ms  MoE/dense  loop/MoE",
    ]
    shares = []
    for name in ("cpu", "gpu"):  # the lab's sizes, then its GPU preset's sizes (on the CPU)
        P = presets.PRESETS["moe"][name]
        cfg = P.models()["moe"]
        m = cfg.moe
        tokens = P.batch * P.seq_len
        torch.manual_seed(0)
        moe = MoE(cfg.d_model, m)
        repeats = 30 if name == "cpu" else 5
        res = compare(cfg.d_model, moe, tokens, repeats=repeats)
        lines.append(
            f"{name:<4} {tokens:>6} {cfg.d_model:>7}  {m.n_shared} + {m.top_k:>2} of "
            f"{m.n_routed:>3} x {m.d_expert:<4} {m.active_hidden:>27} {res['moe']:>9.2f} "
            f"{res['loop']:>9.2f} {res['dense']:>9.2f} {res['moe'] / res['dense']:>9.2f}x "
            f"{res['loop'] / res['moe']:>8.2f}x"
        )
        s = phase_shares(moe, torch.randn(tokens, cfg.d_model))
        shares.append(f"{name:<4} " + ", ".join(f"{p} {v:.0%}" for p, v in s.items()))
    lines.append(
        "goals: MoE/dense <= 4.0x at the lab's (cpu) size and <= 1.3x at the gpu size; "
        "loop/MoE >= 2x at both"
    )
    lines.append("share of the MoE's profiled forward + backward step, by phase:")
    return "\n".join(lines + shares)


def run() -> str:
    """The three layers at both presets' sizes, on one CPU thread as lab 2 runs."""
    with runtime.cpu_threads(1):
        return _report()
