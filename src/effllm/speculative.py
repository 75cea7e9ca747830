"""Self-speculative decoding: the MTP module drafts the token after next, the main model checks it.

Each step of :func:`speculative_generate` has a token ``t`` that the main model has chosen but not
yet read, and a draft ``d`` for the token after it, from the MTP module. One forward pass of the
main model over ``[t, d]`` (with its KV cache) gives its distribution p for the token after ``t``
and for the one after ``d``. The draft is kept or replaced by the rule of Leviathan et al. (2023)
and Chen et al. (2023):

- greedy (temperature 0): keep ``d`` if it is the main model's argmax, else take the argmax;
- sampling: keep ``d`` with probability min(1, p(d) / q(d)), q the draft's distribution; else
  draw from the residual norm(max(0, p - q)).

A kept draft also gives the main model's next token for free (from the pass's second position):
two tokens for one pass. A rejected draft's key and value are dropped from the cache. Either way
the output has exactly the distribution of sampling from the main model alone, and greedy output
is the main model's greedy output token for token. Tokens per main forward pass = 1 + the share
of drafts kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from effllm.kv_cache import KVCache
from effllm.mtp import MTPTransformer

Verify = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def verify_draft(
    p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The acceptance probability α = min(1, p(d) / q(d)) and the residual norm(max(0, p - q)).

    p: (batch, vocab) the main model's distribution; q: (batch, vocab) the draft's, from which
    draft: (batch,) was drawn (so q(d) > 0). Returns α (batch,) and the residual (batch, vocab),
    from which a rejected draft's replacement is drawn (p itself where p = q, where α = 1).
    """
    p_d = p.gather(-1, draft[:, None]).squeeze(-1)
    q_d = q.gather(-1, draft[:, None]).squeeze(-1)
    alpha = torch.clamp(p_d / q_d, max=1.0)
    r = torch.clamp(p - q, min=0.0)
    mass = r.sum(-1, keepdim=True)
    residual = torch.where(mass > 0, r / mass.clamp(min=torch.finfo(r.dtype).tiny), p)
    return alpha, residual


def expected_acceptance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The share of drafts the sampling rule keeps on average, Σ_x q(x) min(1, p(x) / q(x)) =
    Σ_x min(p(x), q(x)) = 1 - TV(p, q): p, q (batch, vocab) -> (batch,)."""
    return torch.minimum(p, q).sum(-1)


def speculative_token(
    p: torch.Tensor,
    q: torch.Tensor,
    generator: torch.Generator | None = None,
    verify: Verify = verify_draft,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw d ~ q, keep it with probability α, else draw from the residual.

    p, q: (batch, vocab). Returns the tokens (batch,), distributed as p, and whether each was the
    kept draft (batch,) bool.
    """
    draft = torch.multinomial(q, 1, generator=generator).squeeze(-1)
    alpha, residual = verify(p, q, draft)
    kept = torch.rand(draft.shape, generator=generator, device=p.device) < alpha
    other = torch.multinomial(residual, 1, generator=generator).squeeze(-1)
    return torch.where(kept, draft, other), kept


@dataclass
class SpecStats:
    """What a decoding run cost: tokens made, forward passes of the main model and of the MTP
    module, drafts proposed and drafts kept."""

    tokens: int = 0
    main_passes: int = 0
    mtp_passes: int = 0
    drafts: int = 0
    accepted: int = 0

    @property
    def acceptance(self) -> float:
        """Share of drafts kept."""
        return self.accepted / max(1, self.drafts)

    @property
    def tokens_per_pass(self) -> float:
        """Tokens per forward pass of the main model (1 for plain decoding)."""
        return self.tokens / max(1, self.main_passes)


def _probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits.float() / temperature, dim=-1)


@torch.no_grad()
def speculative_generate(
    model: MTPTransformer,
    prompt: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    verify: Verify = verify_draft,
) -> tuple[torch.Tensor, SpecStats]:
    """Decode ``max_new_tokens`` after prompt: (1, n) with the main model, drafting with the
    first MTP module; returns (1, n + max_new_tokens) and the run's :class:`SpecStats`.

    ``temperature=0`` is greedy; otherwise the rule of ``verify`` (default :func:`verify_draft`)
    decides. ``generator`` drives every random draw.
    """
    n = prompt.shape[1]
    if prompt.shape[0] != 1:
        raise ValueError(f"one prompt at a time, got a batch of {prompt.shape[0]}")
    if max_new_tokens < 1 or n + max_new_tokens > model.cfg.max_len:
        raise ValueError(f"{n} + {max_new_tokens} tokens: need 1 new and at most max_len in all")
    greedy = temperature == 0
    module, embed, head = model.mtp[0], model.main.embed, model.main.head
    cache, mtp_cache = model.main.new_cache(), KVCache(1, model.cfg.max_len)
    stats = SpecStats()

    def pick(logits: torch.Tensor) -> torch.Tensor:  # (1, vocab) -> (1, 1)
        if greedy:
            return logits.argmax(-1, keepdim=True)
        return torch.multinomial(_probs(logits, temperature), 1, generator=generator)

    def draft_logits(h: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """The MTP module over main hidden states h (1, s, d) and the tokens after them."""
        stats.mtp_passes += 1
        start = mtp_cache.seq_len
        h1 = module(h, embed(nxt), start, mtp_cache.layers[0])
        return model.logits(module, h1[:, -1])

    h = model.main.hidden(prompt, cache)  # prefill
    stats.main_passes += 1
    t = pick(head(h[:, -1]))
    new = [t]
    q_logits = draft_logits(h, torch.cat([prompt[:, 1:], t], dim=1))
    while len(new) < max_new_tokens:
        if greedy:
            d = q_logits.argmax(-1, keepdim=True)
        else:
            q = _probs(q_logits, temperature)
            d = torch.multinomial(q, 1, generator=generator)
        h = model.main.hidden(torch.cat([t, d], dim=1), cache)  # verify: one pass over [t, d]
        logits = head(h)  # (1, 2, vocab)
        stats.main_passes += 1
        stats.drafts += 1
        if greedy:
            kept = bool(logits[0, 0].argmax() == d[0, 0])
        else:
            alpha, residual = verify(_probs(logits[:, 0], temperature), q, d[:, 0])
            kept = bool(torch.rand((), generator=generator, device=alpha.device) < alpha[0])
        if kept:
            stats.accepted += 1
            t = pick(logits[:, 1])  # the main model's token after the draft, free
            new += [d, t]
            q_logits = draft_logits(h, torch.cat([d, t], dim=1))
        else:
            cache.truncate(cache.seq_len - 1)  # forget the rejected draft
            t = (
                pick(logits[:, 0])
                if greedy
                else torch.multinomial(residual, 1, generator=generator)
            )
            new.append(t)
            q_logits = draft_logits(h[:, :1], t)
    out = torch.cat([prompt, *new], dim=1)[:, : n + max_new_tokens]
    stats.tokens = max_new_tokens
    return out, stats
