"""GRPO's outer loop with controlled rewards, a controlled clock and scripted evaluations, so
that every number of its history is known in advance; and the edge values of its checks."""

from types import SimpleNamespace

import pytest
import torch

from effllm import grpo
from effllm.grpo import GRPOConfig, grpo_loss, heldout_accuracy, train_grpo
from effllm.model import ModelConfig, Transformer
from effllm.rl_tasks import AdditionTask

SMALL = ModelConfig(max_len=16, n_layer=1, d_model=32, d_ff=64)
B, G = 2, 3
# Per step: rewards, correctness and well-formedness, each (B, G); means worked out by hand.
REWARDS = [
    torch.tensor([[1.1, 0.1, 0.0], [0.0, 0.0, 0.0]]),  # mean 0.2
    torch.tensor([[0.1, 0.1, 1.1], [1.1, 1.1, 0.1]]),  # mean 0.6
    torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]]),  # mean 1/60
]
CORRECT = [
    torch.tensor([[1.0, 0, 0], [0, 0, 0]]),
    torch.tensor([[0.0, 0, 1], [1, 1, 0]]),
    torch.tensor([[0.0, 0, 0], [0, 0, 0]]),
]
FORMED = [
    torch.tensor([[1.0, 1, 0], [0, 0, 0]]),
    torch.tensor([[1.0, 1, 1], [1, 1, 1]]),
    torch.tensor([[0.0, 0, 0], [1, 0, 0]]),
]
TRAIN_SECONDS = [1.5, 2.0, 0.25]  # what each step's scoring "takes" on the fake clock


class Script:
    """The fakes of one run: a clock, the grader, the evaluator and a spy on the loss."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, heldout_values: list[float]) -> None:
        self.now, self.step = 0.0, 0
        self.heldout_values, self.heldout_calls = list(heldout_values), []
        self.advantages: list[torch.Tensor] = []
        self.rollouts: list[torch.Tensor] = []
        real_loss = grpo.grpo_loss
        monkeypatch.setattr(grpo, "time", SimpleNamespace(perf_counter=lambda: self.now))
        monkeypatch.setattr(grpo, "score", self.score)
        monkeypatch.setattr(grpo, "heldout_accuracy", self.heldout)

        def spy_loss(logp, logp_old, logp_ref, adv, *args):
            self.advantages.append(adv.clone())
            return real_loss(logp, logp_old, logp_ref, adv, *args)

        monkeypatch.setattr(grpo, "grpo_loss", spy_loss)

    def score(self, rollout, problems, n, format_reward, accuracy_reward):
        assert (len(problems), n, rollout.tokens.shape[0]) == (B, G, B * G)
        self.rollouts.append(rollout.tokens)
        i, self.step = self.step, self.step + 1
        self.now += TRAIN_SECONDS[i]
        return REWARDS[i], CORRECT[i], FORMED[i]

    def heldout(self, model, task, problems, samples, temperature):
        self.heldout_calls.append((len(problems), samples, temperature))
        self.now += 1000.0  # evaluation time must not count as training time
        return self.heldout_values.pop(0)


def _run(monkeypatch, global_seed: int = 0, **kw) -> tuple[Script, object]:
    script = Script(monkeypatch, [0.125, 0.5, 0.75])
    torch.manual_seed(0)
    policy = Transformer(SMALL)
    torch.manual_seed(global_seed)
    cfg = GRPOConfig(steps=3, prompts_per_step=B, G=G, eval_every=2, eval_problems=5, **kw)
    hist = train_grpo(policy, AdditionTask(2), cfg)
    return script, hist


def test_history_of_a_scripted_run(monkeypatch):
    script, hist = _run(monkeypatch, eval_samples=3, temperature=0.7)
    assert hist["step"].tolist() == [0, 1, 2, 3]
    assert hist["reward"].iloc[1:].tolist() == pytest.approx([0.2, 0.6, 1 / 60])
    assert hist["accuracy"].iloc[1:].tolist() == pytest.approx([1 / 6, 0.5, 0.0])
    assert hist["format_rate"].iloc[1:].tolist() == pytest.approx([1 / 3, 1.0, 1 / 6])
    assert hist["elapsed_s"].iloc[1:].tolist() == pytest.approx([1.5, 3.5, 3.75])
    # evaluated at step 0, at step 2 (eval_every) and at the last step; NaN elsewhere
    assert hist["heldout_accuracy"].iloc[[0, 2, 3]].tolist() == [0.125, 0.5, 0.75]
    assert hist["heldout_accuracy"].isna().tolist() == [False, True, False, False]
    assert script.heldout_calls == [(5, 3, 0.7)] * 3
    lengths = hist["length"].iloc[1:]
    assert ((lengths >= 1) & (lengths <= AdditionTask(2).max_completion_len)).all()


def test_samples_depend_on_the_configs_seed_not_on_the_global_generator(monkeypatch):
    runs = [_run(monkeypatch, global_seed)[0].rollouts for global_seed in (1, 2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    other_seed = _run(monkeypatch, seed=1)[0].rollouts
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], other_seed, strict=True))


def test_grpo_advantages_of_the_scripted_rewards(monkeypatch):
    script, _ = _run(monkeypatch, reward_offset=5.0)  # a group baseline cancels the offset
    for r, adv in zip(REWARDS, script.advantages, strict=True):
        centred = r - r.mean(dim=1, keepdim=True)
        sd = torch.sqrt((centred**2).sum(dim=1, keepdim=True) / (G - 1))  # unbiased std
        expected = torch.where(sd > 0, centred / (sd + 1e-4), torch.zeros_like(r))
        torch.testing.assert_close(adv, expected.flatten(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("offset", [0.0, -0.5, 2.0])
def test_reward_offset_reaches_reinforce_advantages_but_not_the_reward_column(monkeypatch, offset):
    script, hist = _run(monkeypatch, advantage="reinforce", reward_offset=offset, mu=2)
    assert len(script.advantages) == 6  # mu = 2 loss evaluations per step, same advantages
    for i, r in enumerate(REWARDS):
        for adv in script.advantages[2 * i : 2 * i + 2]:
            torch.testing.assert_close(adv, (r + offset).flatten())
    assert hist["reward"].iloc[1:].tolist() == pytest.approx([0.2, 0.6, 1 / 60])


def test_heldout_accuracy_is_the_mean_correctness_of_all_samples(monkeypatch):
    task = AdditionTask(2)
    problems = task.problems(3, "heldout", seed=0)
    seen = {}

    def fake_score(rollout, problems_, samples):
        seen["shape"] = (len(problems_), samples, rollout.tokens.shape[0])
        return None, torch.tensor([[1.0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]]), None

    monkeypatch.setattr(grpo, "score", fake_score)
    torch.manual_seed(0)
    assert heldout_accuracy(Transformer(SMALL), task, problems, samples=4) == pytest.approx(4 / 12)
    assert seen["shape"] == (3, 4, 12)


def test_grpo_loss_with_an_empty_mask_is_zero_not_nan():
    logp = torch.randn(4, 5, requires_grad=True)
    old, ref = logp.detach() - 0.3, logp.detach() + 0.2
    mask = torch.zeros(4, 5, dtype=torch.bool)
    for aggregation in ("sequence", "token", "constant"):
        loss, stats = grpo_loss(
            logp, old, ref, torch.ones(4), mask, aggregation=aggregation, max_tokens=5
        )
        assert loss.item() == 0.0 and stats == {"kl": 0.0, "clip_frac": 0.0}


def test_one_prompt_per_step_is_the_smallest_batch():
    assert GRPOConfig(prompts_per_step=1).prompts_per_step == 1
    with pytest.raises(ValueError, match="prompts_per_step=0"):
        GRPOConfig(prompts_per_step=0)
    with pytest.raises(ValueError, match="steps=0"):
        GRPOConfig(steps=0)
    with pytest.raises(ValueError, match="mu=0"):
        GRPOConfig(mu=0)
