"""Lab 8's checks: the MTP module's combination step, the speculative accept/verify rule and the
exercise's expected acceptance.

Each function takes the student's function, checks it against :mod:`effllm.mtp` or
:mod:`effllm.speculative` with :func:`effllm.checks.verify`, and returns the function the lab
goes on with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from effllm import mtp, speculative
from effllm.checks import Case, Mistake, verify


def _combine_cases() -> list[Case]:
    """Seeded inputs of the combination step: hidden states and embeddings of different sizes,
    gains away from 1 so that a missing gain shows."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for b, t, d in [(1, 3, 4), (2, 5, 8), (3, 7, 16)]:
        h = 3.0 * torch.randn(b, t, d, generator=g) + 1.0  # h and e on different scales,
        e = 0.1 * torch.randn(b, t, d, generator=g)  # as a hidden state and an embedding are
        M = torch.randn(d, 2 * d, generator=g) / d**0.5
        g_h, g_e = 1 + torch.rand(d, generator=g), 0.5 + torch.rand(d, generator=g)
        cases.append(Case((h, e, M, g_h, g_e), f"h, e of shape {(b, t, d)}"))
    return cases


def _rms(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), gain, 1e-6)


def _layer_norm(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), gain, eps=1e-6)


def combine(student: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """h' = M [RMSNorm(h); RMSNorm(e)] with gains g_h and g_e."""
    return verify(
        "combine",
        student,
        mtp.combine,
        _combine_cases(),
        [
            Mistake(
                lambda h, e, M, g_h, g_e: torch.cat([h, e], -1) @ M.T,
                "it projects h and e without normalising them: RMSNorm each one first (with its "
                "gain), so that the hidden state and the embedding enter on the same scale",
            ),
            Mistake(
                lambda h, e, M, g_h, g_e: torch.cat([_rms(e, g_e), _rms(h, g_h)], -1) @ M.T,
                "it concatenates [RMSNorm(e); RMSNorm(h)]: the report's order is the hidden state "
                "first, then the embedding; M's first d columns read h",
            ),
            Mistake(
                lambda h, e, M, g_h, g_e: _rms(torch.cat([h, e], -1), torch.cat([g_h, g_e])) @ M.T,
                "it normalises the concatenation as one vector of 2d numbers: normalise h and e "
                "separately, each with its own gain",
            ),
            Mistake(
                lambda h, e, M, g_h, g_e: (
                    torch.cat(
                        [_layer_norm(h, g_h), _layer_norm(e, g_e)],
                        -1,
                    )
                    @ M.T
                ),
                "it subtracts the mean (LayerNorm): RMSNorm only divides by the root mean square",
            ),
        ],
        stand_in="mtp.combine",
    )


def _verify_cases() -> list[Case]:
    """Seeded distributions p and q over small vocabularies, and drafts drawn from q, with
    p(d) above and below q(d); plus one row where p = q."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for b, v in [(4, 5), (8, 11), (16, 32)]:
        p = torch.softmax(2 * torch.randn(b, v, generator=g), -1)
        q = torch.softmax(2 * torch.randn(b, v, generator=g), -1)
        q[0] = p[0]
        d = torch.multinomial(q, 1, generator=g).squeeze(-1)
        cases.append(Case((p, q, d), f"{b} rows over a vocabulary of {v}"))
    return cases


def _residual_p(p, q, d):
    alpha, _ = speculative.verify_draft(p, q, d)
    return alpha, p


def _no_min(p, q, d):
    _, residual = speculative.verify_draft(p, q, d)
    return p.gather(-1, d[:, None]).squeeze(-1) / q.gather(-1, d[:, None]).squeeze(-1), residual


def _inverted(p, q, d):
    _, residual = speculative.verify_draft(p, q, d)
    ratio = q.gather(-1, d[:, None]).squeeze(-1) / p.gather(-1, d[:, None]).squeeze(-1)
    return ratio.clamp(max=1.0), residual


def _unnormalised(p, q, d):
    alpha, _ = speculative.verify_draft(p, q, d)
    return alpha, (p - q).clamp(min=0)


def verify_draft(
    student: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """α = min(1, p(d) / q(d)) and the residual norm(max(0, p - q))."""
    return verify(
        "verify_draft",
        student,
        speculative.verify_draft,
        _verify_cases(),
        [
            Mistake(
                _no_min,
                "its α is p(d) / q(d), which exceeds 1 where the main model likes the draft more "
                "than the drafter did: α = min(1, p(d) / q(d)) is a probability",
            ),
            Mistake(
                _inverted,
                "its α is q(d) / p(d): keep the draft with probability p(d) / q(d), so that the "
                "drafts the main model likes less than the drafter are the ones thinned out",
            ),
            Mistake(
                _residual_p,
                "it resamples a rejected draft from p: draw from the residual norm(max(0, p - q)), "
                "which puts back exactly the probability that rejections took away, so that the "
                "output is distributed as p",
            ),
            Mistake(
                _unnormalised,
                "its residual max(0, p - q) does not sum to 1: divide it by its sum",
            ),
        ],
        stand_in="speculative.verify_draft",
    )


def _distributions() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    cases = []
    for b, v in [(3, 4), (6, 9), (10, 40)]:
        p = torch.softmax(2 * torch.randn(b, v, generator=g), -1)
        q = torch.softmax(2 * torch.randn(b, v, generator=g), -1)
        cases.append(Case((p, q), f"{b} pairs of distributions over {v} tokens"))
    return cases


def expected_acceptance(
    student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Σ_x min(p(x), q(x)), per row."""
    return verify(
        "expected_acceptance",
        student,
        speculative.expected_acceptance,
        _distributions(),
        [
            Mistake(
                lambda p, q: (p * q).sum(-1),
                "it returns Σ p(x) q(x), the chance that two independent draws agree: the rule "
                "keeps a draft x with probability min(1, p(x) / q(x)), so average that over q",
            ),
            Mistake(
                lambda p, q: 1 - (p - q).abs().sum(-1),
                "it returns 1 - Σ |p - q|: the total-variation distance is half that sum",
            ),
            Mistake(
                lambda p, q: torch.maximum(p, q).sum(-1),
                "it sums max(p, q), which exceeds 1: sum min(p(x), q(x))",
            ),
        ],
        stand_in="speculative.expected_acceptance",
    )
