"""Rollout speed: sampled tokens per second with and without the KV cache, at the GRPO lab's sizes.

A GRPO step samples G completions for each of its prompts, all as one batch. With the cache,
each new token costs one position of compute; without it, every step re-runs the whole prefix.
The model is untrained (speed does not depend on the weights), so each run samples the full
length: the count of tokens is rows x max_completion_len. On the CPU it runs on one thread, as
the lab does (at these sizes a second thread costs more in synchronisation than it saves).
"""

from __future__ import annotations

import time

import torch

from effllm import presets, runtime
from effllm.model import Transformer
from effllm.rl_tasks import AdditionTask


def _tokens_per_s(model: Transformer, prompts: torch.Tensor, new: int, use_cache: bool) -> float:
    """Best of 10 timed runs after one warm-up: sampled tokens per second."""
    best = float("inf")
    for i in range(11):
        t0 = time.perf_counter()
        model.generate(prompts, new, temperature=1.0, use_cache=use_cache)
        if i:
            best = min(best, time.perf_counter() - t0)
    return prompts.shape[0] * new / best


def run() -> str:
    """Tokens per second of both presets' rollouts on one CPU thread, cached and uncached."""
    with runtime.cpu_threads(1):
        return "\n".join(_rate(name) for name in ("cpu", "gpu"))


def _rate(name: str) -> str:
    """One line: the cached and uncached rollout speed at the sizes of preset ``name``."""
    torch.manual_seed(0)
    preset = presets.PRESETS["grpo"][name]
    task = AdditionTask(preset.n_digits)
    model = Transformer(preset.model).eval()
    problems = task.problems(preset.rl.prompts_per_step, "train", seed=0)
    prompts = task.encode_prompts(problems).repeat_interleave(preset.rl.G, dim=0)
    new = task.max_completion_len
    cached = _tokens_per_s(model, prompts, new, use_cache=True)
    uncached = _tokens_per_s(model, prompts, new, use_cache=False)
    return (
        f"{name} preset sizes ({prompts.shape[0]} rows = {preset.rl.prompts_per_step} prompts"
        f" x G={preset.rl.G}, prompt {prompts.shape[1]} + {new} new tokens, "
        f"{model.num_params() / 1e6:.2f}M params): with KV cache {cached:,.0f} tok/s, "
        f"without {uncached:,.0f} tok/s, speed-up x{cached / uncached:.2f}"
    )
