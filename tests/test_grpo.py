import math

import pytest
import torch

from effllm.grpo import (
    GRPOConfig,
    advantages,
    completion_logprobs,
    group_advantages,
    grpo_loss,
    heldout_accuracy,
    kl_estimator,
    score,
    train_grpo,
)
from effllm.model import ModelConfig, Transformer
from effllm.rl_tasks import AdditionTask
from effllm.sampling import sample_group

SMALL = ModelConfig(max_len=16, n_layer=1, d_model=32, d_ff=64)


def test_group_advantages_are_centred_scaled_and_zero_for_equal_rewards():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.1, 0.1, 0.1, 0.1], [1.1, 0.1, 0.0, 0.0]])
    a = group_advantages(r)
    torch.testing.assert_close(a.mean(dim=1), torch.zeros(3), atol=1e-6, rtol=0)
    assert torch.equal(a[1], torch.zeros(4))  # all equal: no signal
    assert a[0].std().item() == pytest.approx(1.0, abs=1e-3)
    assert a[2, 0] > 0 > a[2, 3]
    no_std = group_advantages(r, scale=False)
    torch.testing.assert_close(no_std[0], torch.tensor([0.5, -0.5, -0.5, 0.5]))
    torch.testing.assert_close(advantages(r, "reinforce"), r)
    torch.testing.assert_close(advantages(r, "grpo_no_std"), no_std)
    # A reward offset moves REINFORCE's advantages but cancels in the group baseline.
    torch.testing.assert_close(group_advantages(r + 1.0), a, atol=1e-5, rtol=0)
    torch.testing.assert_close(advantages(r + 1.0, "reinforce"), r + 1.0)


def test_bad_advantage_inputs():
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages(torch.ones(3, 1))
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages(torch.ones(4))
    with pytest.raises(ValueError, match="unknown advantage kind 'ppo'"):
        advantages(torch.ones(2, 2), "ppo")


def test_kl_estimator_is_non_negative_and_zero_for_identical_policies():
    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(50, 7), dim=-1)
    logq = torch.log_softmax(torch.randn(50, 7), dim=-1)
    assert (kl_estimator(logp, logq) >= 0).all()
    assert torch.equal(kl_estimator(logp, logp), torch.zeros_like(logp))


def test_kl_estimator_is_unbiased_on_a_small_categorical():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])  # π_θ, the sampling policy
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])  # π_ref
    exact = (p * (p / q).log()).sum().item()
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    estimate = kl_estimator(p.log()[x], q.log()[x]).mean().item()
    # Standard error of the mean here is about 0.0007; 0.005 is over 6 of them.
    assert estimate == pytest.approx(exact, abs=0.005)
    naive = (p.log()[x] - q.log()[x]).mean().item()  # also unbiased, but can go negative
    assert estimate != pytest.approx(naive, abs=1e-6)


def test_grpo_loss_matches_a_hand_computation():
    eps, beta = 0.2, 0.1
    logp = torch.tensor([[math.log(0.6), math.log(0.5)], [math.log(0.2), 0.0]])
    logp_old = torch.tensor([[math.log(0.4), math.log(0.5)], [math.log(0.4), 0.0]])
    logp_ref = torch.tensor([[math.log(0.3), math.log(0.5)], [math.log(0.4), 0.0]])
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    # Output 1, token 1: ratio 1.5 clipped to 1.2 (A > 0): 1.2; KL term 0.5 - log 0.5 - 1.
    # Output 1, token 2: ratio 1, KL 0. Output 2: ratio 0.5, A < 0: min(-0.5, -0.8) = -0.8;
    # KL term 2 - log 2 - 1. Objective: mean over outputs of the mean over their tokens.
    kl1, kl2 = 0.5 - math.log(0.5) - 1, 2 - math.log(2) - 1
    out1 = ((1.2 - beta * kl1) + 1.0) / 2
    out2 = -0.8 - beta * kl2
    loss, stats = grpo_loss(logp, logp_old, logp_ref, adv, mask, eps, beta)
    assert loss.item() == pytest.approx(-(out1 + out2) / 2, rel=1e-5)
    assert stats["kl"] == pytest.approx((kl1 + kl2) / 3, rel=1e-5)
    assert stats["clip_frac"] == pytest.approx(2 / 3)
    token_loss, _ = grpo_loss(logp, logp_old, logp_ref, adv, mask, eps, beta, "token")
    assert token_loss.item() == pytest.approx(-(2 * out1 + out2) / 3, rel=1e-5)
    with pytest.raises(ValueError, match="aggregation 'batch'"):
        grpo_loss(logp, logp_old, logp_ref, adv, mask, aggregation="batch")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"G": 1}, "G must be >= 2"),
        ({"steps": 0}, "steps=0"),
        ({"mu": 0}, "mu=0"),
        ({"temperature": 0.0}, "temperature"),
        ({"advantage": "ppo"}, "unknown advantage 'ppo'"),
        ({"aggregation": "batch"}, "unknown aggregation 'batch'"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GRPOConfig(**kwargs)


def test_completion_logprobs_match_the_sampling_distribution():
    torch.manual_seed(0)
    model = Transformer(SMALL).eval()
    task = AdditionTask(2)
    prompts = task.encode_prompts(task.problems(2, "train", seed=0))
    roll = sample_group(model, prompts, 3, 3, 0.7, generator=torch.Generator().manual_seed(0))
    logp = completion_logprobs(model, roll, temperature=0.7)
    # The first completion token's distribution is the prompt's last-position softmax.
    logits, _ = model(prompts)
    first = torch.log_softmax(logits[:, -1] / 0.7, dim=-1).repeat_interleave(3, dim=0)
    expected = first.gather(1, roll.completions[:, :1]).squeeze(1)
    torch.testing.assert_close(logp[:, 0], expected, rtol=1e-4, atol=1e-5)


def _fresh_rollout(n: int, split: str, G: int):
    """An untrained SMALL model, n two-digit problems of ``split`` and G samples of each."""
    torch.manual_seed(0)
    model = Transformer(SMALL)
    task = AdditionTask(2)
    problems = task.problems(n, split, seed=0)
    roll = sample_group(model, task.encode_prompts(problems), G, task.max_completion_len, 1.0)
    return model, task, problems, roll


def test_one_grpo_step_raises_the_probability_of_rewarded_answers():
    model, task, problems, roll = _fresh_rollout(16, "train", 4)
    # A toy reward: 1 for completions whose first byte is ASCII (about half), else 0.
    starts = roll.completions[:, 0] < 128
    rewards = starts.float().view(16, 4)
    assert 0 < rewards.sum() < 64
    adv = advantages(rewards, "grpo").flatten()
    logp = completion_logprobs(model, roll)
    old = logp.detach()
    loss, _ = grpo_loss(logp, old, old, adv, roll.mask)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
        change = ((completion_logprobs(model, roll) - old) * roll.mask).sum(dim=1)
    assert change[adv > 0].mean() > 0 > change[adv < 0].mean()


def test_score_and_heldout_accuracy_on_a_model_that_knows_nothing():
    model, task, problems, roll = _fresh_rollout(8, "heldout", 2)
    rewards, correct = score(roll, problems, 2)
    assert rewards.shape == correct.shape == (8, 2)
    assert heldout_accuracy(model, task, problems) == heldout_accuracy(model, task, problems)
    assert 0.0 <= heldout_accuracy(model, task, problems, 1, 0.0) <= 0.1


def test_train_grpo_history_columns():
    torch.manual_seed(0)
    model = Transformer(SMALL)
    task = AdditionTask(2)
    cfg = GRPOConfig(steps=3, prompts_per_step=2, G=2, eval_every=2, eval_problems=8)
    hist = train_grpo(model, task, cfg)
    assert hist["step"].tolist() == [0, 1, 2, 3]
    assert hist["heldout_accuracy"].notna().tolist() == [True, False, True, True]
    for col in ("reward", "accuracy", "format_rate", "kl", "length", "clip_frac", "loss"):
        assert hist[col].iloc[1:].notna().all(), col
    assert (hist["kl"].iloc[1:] >= 0).all()
