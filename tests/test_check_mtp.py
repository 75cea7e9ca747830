"""Lab 8's checks (effllm.check_mtp): the right function passes, each known mistake is rejected
with its message, and a result off by 1% is rejected."""

import pytest
import torch

from effllm import check_mtp as lab8


def rms(x, g):
    return x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * g


def combine(h, e, M, g_h, g_e):
    return torch.cat([rms(h, g_h), rms(e, g_e)], -1) @ M.T


def verify_draft(p, q, d):
    rows = torch.arange(len(d))
    alpha = torch.minimum(p[rows, d] / q[rows, d], torch.ones(len(d)))
    r = (p - q).clamp(min=0)
    s = r.sum(-1, keepdim=True)
    return alpha, torch.where(s > 0, r / torch.where(s > 0, s, 1), p)


def alpha_with(ratio):
    def wrong(p, q, d):
        rows = torch.arange(len(d))
        return ratio(p[rows, d], q[rows, d]), verify_draft(p, q, d)[1]

    return wrong


LAB8 = [
    (
        lab8.combine,
        combine,
        [
            (lambda h, e, M, g_h, g_e: torch.cat([h, e], -1) @ M.T, "without normalising"),
            (
                lambda h, e, M, g_h, g_e: combine(e, h, M, g_e, g_h),
                r"\[RMSNorm\(e\); RMSNorm\(h\)\]",
            ),
            (
                lambda h, e, M, g_h, g_e: rms(torch.cat([h, e], -1), torch.cat([g_h, g_e])) @ M.T,
                "normalises the concatenation",
            ),
            (
                lambda h, e, M, g_h, g_e: combine(
                    h - h.mean(-1, keepdim=True), e - e.mean(-1, keepdim=True), M, g_h, g_e
                ),
                "subtracts the mean",
            ),
        ],
    ),
    (
        lab8.verify_draft,
        verify_draft,
        [
            (alpha_with(lambda pd, qd: pd / qd), r"α is p\(d\) / q\(d\), which exceeds 1"),
            (alpha_with(lambda pd, qd: (qd / pd).clamp(max=1)), r"α is q\(d\) / p\(d\)"),
            (lambda p, q, d: (verify_draft(p, q, d)[0], p), "resamples a rejected draft from p"),
            (lambda p, q, d: (verify_draft(p, q, d)[0], (p - q).clamp(min=0)), "does not sum to 1"),
        ],
    ),
    (
        lab8.expected_acceptance,
        lambda p, q: torch.where(p < q, p, q).sum(-1),
        [
            (lambda p, q: (p * q).sum(-1), "two independent draws agree"),
            (lambda p, q: 1 - (p - q).abs().sum(-1), "half that sum"),
            (lambda p, q: torch.where(p > q, p, q).sum(-1), "exceeds 1"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("check", "right", "wrongs"), LAB8, ids=lambda x: getattr(x, "__name__", "")
)
def test_lab8_checks_accept_the_method_and_name_each_mistake(
    check, right, wrongs, grades, one_percent_off
):
    grades(check, right, wrongs, one_percent_off(right))
