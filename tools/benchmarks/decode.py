"""Generation speed with and without a KV cache, for MHA and MLA at the sizes of lab 3.

``python tools/bench.py decode``. The models are those of the lab's preset for this machine
(from :mod:`effllm.presets`, which the lab and its unit tests read too), with freshly initialised
weights: decoding speed does not depend on what the weights have learnt, since every run
generates the same number of tokens.
"""

from __future__ import annotations

import dataclasses

from effllm import presets, runtime
from effllm.model import Transformer, with_mla_form
from effllm.speed import generation_rate, mla_decode_step_seconds


def run() -> str:
    """Decoding speed as lab 3 measures it: on a CPU with one thread, as the lab sets."""
    with runtime.cpu_threads(1):
        return _report()


def _report() -> str:
    P = presets.load("attention")
    models = P.models()
    dev = runtime.device()
    runtime.seed_everything(0)
    mha = Transformer(models["MHA"]).to(dev)
    mla = Transformer(models["MLA"]).to(dev)
    variants = {
        "MHA": mha,
        "MLA naive": with_mla_form(mla, absorb=False),
        "MLA absorbed": with_mla_form(mla, absorb=True),
    }
    prompt, new = P.decode_prompt, P.decode_tokens
    lines = [
        runtime.describe(P.name),
        f"greedy generation, batch 1, prompt {prompt} + {new} new tokens; best of 3 runs",
        f"{'model':<14}{'cached tok/s':>14}{'uncached tok/s':>16}{'speed-up':>10}",
    ]
    for label, model in variants.items():
        cached = generation_rate(model, prompt, new, use_cache=True)
        uncached = generation_rate(model, prompt, new, use_cache=False)
        lines.append(f"{label:<14}{cached:>14.0f}{uncached:>16.0f}{cached / uncached:>9.1f}x")
    att = models["MLA"].attention
    d_model = models["MLA"].d_model
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
