import itertools
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


@pytest.mark.parametrize("value", [0.1, 1.1, 2.1, 1 / 3, 1e6 + 0.1])
def test_equal_rewards_give_exactly_zero_advantage(value):
    # In float32 the mean of G copies of 0.1 need not be 0.1; the rounding error must not be
    # divided by a near-zero std into a spurious advantage.
    r = torch.full((2, 8), value)
    r[1, 3] = value + 1.0  # a second group that does carry signal
    for kind in ("grpo", "grpo_no_std"):
        a = advantages(r, kind)
        assert torch.equal(a[0], torch.zeros(8)), (kind, a[0])
        assert a[1, 3] > 0


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
    # Constant normaliser L = 5: each output's token terms summed, divided by L, averaged.
    const_loss, _ = grpo_loss(logp, logp_old, logp_ref, adv, mask, eps, beta, "constant", 5)
    assert const_loss.item() == pytest.approx(-(2 * out1 + out2) / 5 / 2, rel=1e-5)
    with pytest.raises(ValueError, match="aggregation 'batch'"):
        grpo_loss(logp, logp_old, logp_ref, adv, mask, aggregation="batch")
    with pytest.raises(ValueError, match="needs max_tokens >= 2"):
        grpo_loss(logp, logp_old, logp_ref, adv, mask, aggregation="constant")
    with pytest.raises(ValueError, match="needs max_tokens >= 2"):
        grpo_loss(logp, logp_old, logp_ref, adv, mask, aggregation="constant", max_tokens=1)


def _expected_offset_gradient(aggregation: str, G: int = 1) -> torch.Tensor:
    """Exact E[∇ loss] when every output's advantage is the same constant c = 1.

    A toy policy with two possible outputs: its first token is A (then the output ends after
    2 tokens, like a short untagged answer) or B (4 tokens, like a longer tagged one), chosen
    by the logits z = (0.5, -0.3); every later token is certain (log-prob 0). The expectation
    enumerates all G-tuples of outputs (G = 1 suffices for losses that treat outputs apart).
    """
    z = torch.tensor([0.5, -0.3], requires_grad=True)
    lengths = (2, 4)
    expected = torch.zeros(2)
    for batch in itertools.product((0, 1), repeat=G):
        logp_first = torch.log_softmax(z, dim=0)
        prob = math.prod(logp_first[o].exp().item() for o in batch)
        logp = torch.zeros(G, 4)
        logp[:, 0] = torch.stack([logp_first[o] for o in batch])
        mask = torch.tensor([[t < lengths[o] for t in range(4)] for o in batch])
        old = logp.detach()
        loss, _ = grpo_loss(
            logp, old, old, torch.ones(G), mask, aggregation=aggregation, max_tokens=4
        )
        (grad,) = torch.autograd.grad(loss, z)
        expected += prob * grad
    return expected


def test_constant_offset_has_zero_expected_gradient_only_without_length_normalisation():
    # A per-output sum (constant normaliser): E[Σ_t ∇log π] = E[∇log π(o)] = 0, exactly.
    torch.testing.assert_close(
        _expected_offset_gradient("constant"), torch.zeros(2), atol=1e-7, rtol=0
    )
    torch.testing.assert_close(
        _expected_offset_gradient("constant", G=2), torch.zeros(2), atol=1e-7, rtol=0
    )
    # With 1/|o_i| the offset's expected gradient is -∇E[1/|o|] (loss = minus the objective):
    # with p = π(A), d/dz_A E[1/|o|] = p(1-p)(1/2 - 1/4) > 0, so the step raises π(A).
    p = torch.softmax(torch.tensor([0.5, -0.3]), dim=0)[0].item()
    slope = p * (1 - p) * (1 / 2 - 1 / 4)
    sequence = _expected_offset_gradient("sequence")
    torch.testing.assert_close(sequence, torch.tensor([-slope, slope]), atol=1e-6, rtol=0)
    assert sequence[0] < -0.05  # gradient descent moves z_A up: towards the short output
    # DAPO's token average, over groups of 2, is biased the same way, by a smaller amount.
    token = _expected_offset_gradient("token", G=2)
    assert sequence[0] < token[0] < -0.01 and torch.allclose(token.sum(), torch.zeros(()))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"G": 1}, "G must be >= 2"),
        ({"steps": 0}, "steps=0"),
        ({"mu": 0}, "mu=0"),
        ({"temperature": 0.0}, "temperature"),
        ({"advantage": "ppo"}, "unknown advantage 'ppo'"),
        ({"aggregation": "batch"}, "unknown aggregation 'batch'"),
        ({"top_k": 5, "mu": 2}, "top_k=5 needs"),
        ({"top_k": 0}, "top_k=0 needs"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GRPOConfig(**kwargs)


@pytest.mark.parametrize("top_k", [None, 5])
def test_completion_logprobs_match_the_sampling_distribution(top_k):
    torch.manual_seed(0)
    model = Transformer(SMALL).eval()
    task = AdditionTask(2)
    prompts = task.encode_prompts(task.problems(2, "train", seed=0))
    gen = torch.Generator().manual_seed(0)
    roll = sample_group(model, prompts, 3, 3, 0.7, top_k, generator=gen)
    logp = completion_logprobs(model, roll, temperature=0.7, top_k=top_k)
    assert torch.isfinite(logp).all()  # masked-out positions are 0, not -inf * 0
    # The first completion token's distribution is the prompt's last-position softmax,
    # restricted to the k most likely tokens when sampling was.
    logits, _ = model(prompts)
    scaled = logits[:, -1] / 0.7
    if top_k is not None:
        kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    first = torch.log_softmax(scaled, dim=-1).repeat_interleave(3, dim=0)
    expected = first.gather(1, roll.completions[:, :1]).squeeze(1)
    torch.testing.assert_close(logp[:, 0], expected, rtol=1e-4, atol=1e-5)
    if top_k is not None:  # the truncated policy puts more mass on each kept token
        untruncated = completion_logprobs(model, roll, temperature=0.7)
        assert (logp[roll.mask] > untruncated[roll.mask] + 0.1).all()
        assert ((first > float("-inf")).sum(dim=1) == top_k).all()


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
    rewards, correct, formed = score(roll, problems, 2)
    assert rewards.shape == correct.shape == formed.shape == (8, 2)
    assert torch.equal(rewards > 0, formed > 0)
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


def test_train_grpo_uses_the_configs_reward_weights_and_top_k():
    task = AdditionTask(2)
    runs = {}
    for weights in ((0.1, 1.0), (0.0, 0.0)):
        torch.manual_seed(0)
        model = Transformer(SMALL)
        cfg = GRPOConfig(
            steps=2,
            prompts_per_step=4,
            G=2,
            eval_problems=8,
            top_k=20,
            format_reward=weights[0],
            accuracy_reward=weights[1],
        )
        runs[weights] = train_grpo(model, task, cfg)
        assert runs[weights]["loss"].iloc[1:].map(math.isfinite).all()
    # Zero weights: every reward is 0, whatever the model wrote (the format rate is still
    # counted from the text, not from the reward).
    assert (runs[(0.0, 0.0)]["reward"].iloc[1:] == 0).all()
    assert (runs[(0.1, 1.0)]["reward"].iloc[1:] >= 0).all()


def test_score_grades_each_sample_against_its_own_problem():
    """Two problems, G = 2: right, wrong, untagged and cut-off answers, graded row by row."""
    from types import SimpleNamespace

    from effllm.rl_tasks import Problem

    problems = [Problem(40, 55, 2), Problem(12, 30, 2)]  # answers 95 and 42
    rollout = SimpleNamespace(
        texts=lambda: ["<95>", "<42>", "42", "<42>"],
        finished=torch.tensor([True, True, True, False]),
    )
    rewards, correct, formed = score(rollout, problems, 2, format_reward=0.1, accuracy_reward=1.0)
    torch.testing.assert_close(rewards, torch.tensor([[1.1, 0.1], [0.0, 0.0]]))
    assert correct.tolist() == [[True, False], [False, False]]
    assert formed.tolist() == [[True, True], [False, False]]
