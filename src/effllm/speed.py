"""Wall-clock speed of generation, as the labs measure it on the machine they run on.

Timings here are for showing in a lab (lab 3's cached against uncached generation, naive against
absorbed MLA) and for the repository's benchmark scripts; tests never assert on a time. Each
function returns the best of several runs after a warm-up: on a shared machine the fastest run
is the one least disturbed by other work.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from effllm import runtime
from effllm.attention import AttentionConfig, MultiHeadLatentAttention
from effllm.kv_cache import LayerCache


@torch.no_grad()
def generation_rate(
    model: nn.Module,
    prompt_len: int,
    new_tokens: int,
    use_cache: bool = True,
    batch: int = 1,
    repeats: int = 3,
) -> float:
    """Tokens per second for greedy generation of ``new_tokens`` after a random prompt.

    Prompt: (batch, prompt_len); the prefill is part of the timed run, as in real use. Returns
    the best of ``repeats`` runs (after one warm-up), which is the least disturbed by other work
    on a shared machine.
    """
    if min(prompt_len, new_tokens, batch, repeats) <= 0:
        raise ValueError(f"sizes must be positive: {prompt_len=} {new_tokens=} {batch=} {repeats=}")
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, 256, (batch, prompt_len), generator=gen).to(dev)
    was_training = model.training
    model.eval()
    model.generate(prompt, 2, temperature=0, use_cache=use_cache)
    best = math.inf
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    model.train(was_training)
    return batch * new_tokens / best


@torch.no_grad()
def mla_decode_step_seconds(
    d_model: int, cfg: AttentionConfig, context: int, batch: int = 8, repeats: int = 5
) -> float:
    """Seconds for one MLA layer to decode one token per sequence against a full cache.

    The cache holds ``context`` positions of random latents and rotary keys for ``batch``
    sequences; the layer is built from ``cfg`` (``cfg.mla_absorb`` picks the form) with a fixed
    seed, so both forms get the same weights. Returns the best of ``repeats`` steps.
    """
    if cfg.kind != "mla":
        raise ValueError(f"an MLA configuration is needed, got kind={cfg.kind!r}")
    dev = runtime.device()
    torch.manual_seed(0)
    layer = MultiHeadLatentAttention(d_model, context + 1, cfg).to(dev).eval()
    cache = LayerCache(context + 1)
    cache.update(
        c_KV=torch.randn(batch, context, layer.d_c, device=dev),
        k_R=torch.randn(batch, context, layer.d_R, device=dev),
    )
    x = torch.randn(batch, 1, d_model, device=dev)
    best = math.inf
    for i in range(repeats + 1):  # the first step is a warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        layer(x, start_pos=context, cache=cache)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - t0)
        cache.truncate(context)
    return best
