"""Sampling tokens from a model: one token from logits, and G completions per prompt.

:func:`sample_next` draws the next token of every row (greedy, temperature, top-k); both
:meth:`effllm.model.Transformer.generate` and :func:`sample_group` use it.

:func:`sample_group` makes the rollouts of RL with the KV cache. Reinforcement learning on a
language model spends most of its time there, generating answers to grade. Everything is one
batch: the G samples of every prompt are rows of the same tensor, the prompts are run through the
model once (prefill) and every later step feeds one new token per row, reading the rest from the
cache. Rows that have produced the end-of-sequence token keep being fed (a batch cannot shrink
in place) but are padded and masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from effllm.tokenizer import EOS, PAD, decode
from effllm.validate import non_negative

_INVALID_BYTE = 0xFF  # never valid in UTF-8


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample one token per row from logits: (batch, vocab) -> (batch, 1).

    ``temperature=0`` takes the most likely token; ``top_k`` keeps only the k likeliest.
    """
    if non_negative("temperature", temperature) == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@dataclass
class Rollout:
    """Sampled completions of a batch of prompts, G per prompt, in prompt-major order.

    tokens: (N, prompt_len + T), N = prompts x G; rows i*G ... i*G + G - 1 share prompt i.
    mask: (N, T) True for the completion tokens that count, up to and including EOS.
    finished: (N,) True where the completion ended with EOS inside the length limit.
    """

    tokens: torch.Tensor
    prompt_len: int
    mask: torch.Tensor
    finished: torch.Tensor

    @property
    def completions(self) -> torch.Tensor:
        """Sampled token ids (N, T), PAD after the end of each completion."""
        return self.tokens[:, self.prompt_len :]

    @property
    def lengths(self) -> torch.Tensor:
        """Completion lengths in tokens (N,), EOS included."""
        return self.mask.sum(dim=1)

    def texts(self) -> list[str]:
        """The decoded completions, without their EOS.

        A special token inside a completion (BOS or PAD sampled mid-answer) is garbage, not
        something to skip: it is decoded as an invalid byte, which shows up as U+FFFD.
        """
        out = []
        for row, keep in zip(self.completions.tolist(), self.mask.tolist(), strict=True):
            ids = [t if t < 256 else _INVALID_BYTE for t, k in zip(row, keep, strict=True) if k]
            if ids and row[len(ids) - 1] == EOS:
                ids.pop()
            out.append(decode(ids))
        return out


@torch.no_grad()
def sample_group(
    model: nn.Module,
    prompts: torch.Tensor,
    group_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Sample ``group_size`` completions for each row of prompts: (batch, prompt_len).

    All prompts must have the same length (the attention has no padding mask). Sampling stops
    early once every row has produced EOS. ``temperature=0`` is greedy decoding (then a group
    holds G copies of the same answer; use ``group_size=1`` to evaluate).
    """
    if prompts.dim() != 2:
        raise ValueError(f"prompts must be (batch, prompt_len), got shape {tuple(prompts.shape)}")
    if group_size < 1 or max_new_tokens < 1:
        raise ValueError(f"group_size={group_size}, max_new_tokens={max_new_tokens}: need >= 1")
    if prompts.shape[1] + max_new_tokens > model.cfg.max_len:
        raise ValueError(
            f"{prompts.shape[1]} + {max_new_tokens} tokens exceed max_len={model.cfg.max_len}"
        )
    rows = prompts.repeat_interleave(group_size, dim=0)  # (N, P)
    cache = model.new_cache()
    logits, _ = model(rows, cache=cache)  # prefill: the whole prompt at once
    done = torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
    new, counts = [], []
    for step in range(max_new_tokens):
        nxt = sample_next(logits[:, -1], temperature, top_k, generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        new.append(nxt)
        counts.append(~done)  # a token counts if its row had not ended before it
        done = done | (nxt == EOS)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        logits, _ = model(nxt[:, None], cache=cache)  # one token per row; the rest is cached
    completions = torch.stack(new, dim=1)  # (N, T)
    mask = torch.stack(counts, dim=1)
    return Rollout(torch.cat([rows, completions], dim=1), prompts.shape[1], mask, done)
