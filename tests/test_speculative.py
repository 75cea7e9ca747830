"""The speculative sampling rule (effllm.speculative): its tokens are distributed as the main
model's p, whatever the draft's q, and a subtly wrong rule is caught by the same test."""

import pytest
import torch

from effllm.speculative import speculative_token, verify_draft

# p and q over a vocabulary of six: q overrates tokens 0 and 1 and misses token 5 entirely
P = torch.tensor([0.10, 0.05, 0.30, 0.25, 0.20, 0.10])
Q = torch.tensor([0.40, 0.30, 0.10, 0.10, 0.10, 0.00])
N = 200_000
CHI2_DF5_P001 = 20.52  # the chi-square distribution's 0.999 quantile with 5 degrees of freedom


def frequencies(verify):
    g = torch.Generator().manual_seed(0)
    tokens, kept = speculative_token(P.expand(N, -1), Q.expand(N, -1), g, verify)
    return torch.bincount(tokens, minlength=6).double() / N, kept.double().mean().item()


def chi2(freq):
    return (N * (freq - P.double()) ** 2 / P.double()).sum().item()


def test_the_rule_samples_from_p_and_keeps_sum_min_p_q_of_the_drafts():
    freq, kept = frequencies(verify_draft)
    assert 0.5 * (freq - P.double()).abs().sum() < 0.005  # total variation
    assert chi2(freq) < CHI2_DF5_P001
    assert kept == pytest.approx(torch.minimum(P, Q).sum().item(), abs=0.005)


def test_resampling_from_p_instead_of_the_residual_is_detected():
    freq, _ = frequencies(lambda p, q, d: (verify_draft(p, q, d)[0], p))
    assert 0.5 * (freq - P.double()).abs().sum() > 0.05
    assert chi2(freq) > 100 * CHI2_DF5_P001


def test_accepting_without_the_ratio_is_detected():
    freq, _ = frequencies(lambda p, q, d: (torch.ones(len(d)), verify_draft(p, q, d)[1]))
    assert chi2(freq) > 100 * CHI2_DF5_P001  # that is sampling from q


def test_verify_draft_by_hand():
    p, q = P[None], Q[None]
    alpha, residual = verify_draft(p, q, torch.tensor([0]))
    assert alpha.item() == pytest.approx(0.10 / 0.40)
    want = torch.tensor([0, 0, 0.2, 0.15, 0.1, 0.1]) / 0.55
    assert torch.allclose(residual[0], want)
    alpha, residual = verify_draft(p, p, torch.tensor([3]))
    assert alpha.item() == 1 and torch.equal(residual, p)  # p = q: nothing to put back
