"""The speculative sampling rule (effllm.speculative): its tokens are distributed as the main
model's p, whatever the draft's q, and a subtly wrong rule is caught by the same test."""

import pytest
import torch

from effllm import runtime
from effllm.model import ModelConfig
from effllm.mtp import MTPConfig, MTPTransformer
from effllm.speculative import speculative_generate, speculative_token, verify_draft

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


def _two_token_frequencies(m, prompt, n, verify):
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(4, 4)
    for _ in range(n):
        out, _ = speculative_generate(m, prompt, 2, temperature=1.0, generator=g, verify=verify)
        counts[out[0, -2], out[0, -1]] += 1
    return counts / n


def test_sampled_speculative_decoding_draws_the_main_models_two_token_distribution():
    """Over a vocabulary of four, the pairs of tokens that the whole loop samples follow the main
    model's p(t1) p(t2 | t1), computed exactly; the wrong residual is caught by the same test."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=4, max_len=8, n_layer=1, d_model=16, d_ff=32)
    m = MTPTransformer(cfg, MTPConfig()).eval()
    with torch.no_grad():
        m.main.head.weight.mul_(40)  # peaked distributions, so that p and the draft's q differ
    prompt = torch.tensor([[0, 1, 2]])
    with torch.no_grad():
        p1 = torch.softmax(m.main(prompt)[0][0, -1], -1)
        exact = torch.stack(
            [
                p1[a]
                * torch.softmax(m.main(torch.cat([prompt, torch.tensor([[a]])], 1))[0][0, -1], -1)
                for a in range(4)
            ]
        )
    n = 2000
    with runtime.cpu_threads(1):  # thousands of tiny passes: one thread is faster
        ok = _two_token_frequencies(m, prompt, n, verify_draft)
        wrong = _two_token_frequencies(m, prompt, n, lambda p, q, d: (verify_draft(p, q, d)[0], p))
    chi2 = [(n * (f - exact) ** 2 / exact.clamp(min=1e-9)).sum().item() for f in (ok, wrong)]
    assert chi2[0] < 37.7  # chi-square, 15 degrees of freedom, 0.999 quantile
    assert chi2[1] > 37.7
