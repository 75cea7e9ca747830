"""Generation speed with and without a KV cache, for MHA and MLA at the sizes of lab 3.

``python -m effllm.bench decode``. The models are those of the lab's preset for this machine
(read from ``labs/03_attention_kv_cache.ipynb``, so the lab, its unit test and this benchmark
share one definition), with freshly initialised weights: decoding speed does not depend on
what the weights have learnt, since every run generates the same number of tokens.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch
from torch import nn

from effllm import runtime
from effllm.attention import AttentionConfig, MultiHeadLatentAttention
from effllm.benchmarks import lab_presets
from effllm.kv_cache import LayerCache
from effllm.model import Transformer


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


def with_mla_form(model: Transformer, absorb: bool) -> Transformer:
    """A copy of an MLA ``model`` (same weights) that attends in the naive or absorbed form."""
    att = dataclasses.replace(model.cfg.attention, mla_absorb=absorb)
    twin = Transformer(dataclasses.replace(model.cfg, attention=att))
    twin.load_state_dict(model.state_dict())
    return twin.to(next(model.parameters()).device)


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


def run() -> str:
    """Decoding speed as lab 3 measures it: on a CPU with one thread, as the lab sets."""
    with runtime.cpu_threads(1):
        return _report()


def _report() -> str:
    name, preset = runtime.select_preset(lab_presets("03_attention_kv_cache"))
    dev = runtime.device()
    runtime.seed_everything(0)
    mha = Transformer(preset["models"]["MHA"]).to(dev)
    mla = Transformer(preset["models"]["MLA"]).to(dev)
    models = {
        "MHA": mha,
        "MLA naive": with_mla_form(mla, absorb=False),
        "MLA absorbed": with_mla_form(mla, absorb=True),
    }
    prompt, new = preset["decode_prompt"], preset["decode_tokens"]
    lines = [
        f"{runtime.describe(name)}",
        f"greedy generation, batch 1, prompt {prompt} + {new} new tokens; best of 3 runs",
        f"{'model':<14}{'cached tok/s':>14}{'uncached tok/s':>16}{'speed-up':>10}",
    ]
    for label, model in models.items():
        cached = generation_rate(model, prompt, new, use_cache=True)
        uncached = generation_rate(model, prompt, new, use_cache=False)
        lines.append(f"{label:<14}{cached:>14.0f}{uncached:>16.0f}{cached / uncached:>9.1f}x")
    att = preset["models"]["MLA"].attention
    d_model = preset["models"]["MLA"].d_model
    lines.append("one MLA layer, one decoding step, batch 8; best of 5 steps")
    lines.append(f"{'cached tokens':<14}{'naive ms':>14}{'absorbed ms':>16}{'speed-up':>10}")
    for context in (256, 1024, 4096):
        naive, absorbed = (
            mla_decode_step_seconds(d_model, dataclasses.replace(att, mla_absorb=a), context)
            for a in (False, True)
        )
        lines.append(
            f"{context:<14}{1e3 * naive:>14.2f}{1e3 * absorbed:>16.2f}{naive / absorbed:>9.1f}x"
        )
    return "\n".join(lines)
