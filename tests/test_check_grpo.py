"""Lab 4's checks (effllm.check_grpo): the right function passes, each known mistake is rejected
with its message, and a result off by 1% (or a wrong rule) is rejected."""

import re

import pytest
import torch

from effllm import check_grpo as lab4
from effllm import grpo
from effllm.checks import CheckFailedError

ASCII_TAG = re.compile(r"<([0-9]{1,12})>")


def reward(completion, answer, finished, format_reward, accuracy_reward):
    match = ASCII_TAG.fullmatch(completion)
    if not finished or match is None:
        return 0.0
    return format_reward + (accuracy_reward if int(match.group(1)) == answer else 0.0)


def reward_with(pattern, find="fullmatch", finished_matters=True, both=True, weights=None):
    def wrong(completion, answer, finished, format_reward, accuracy_reward):
        f, a = weights or (format_reward, accuracy_reward)
        match = getattr(re.compile(pattern), find)(completion)
        if match is None or (finished_matters and not finished):
            return 0.0
        digits = match.group(1)
        right = len(digits) < 4000 and int(digits) == answer  # int() refuses 4300 digits
        return (f + a if both else a) if right else f

    return wrong


def untagged_earns_format(completion, answer, finished, format_reward, accuracy_reward):
    if finished and completion.isdigit() and completion.isascii():
        return format_reward
    return reward(completion, answer, finished, format_reward, accuracy_reward)


def advantages(r, eps=1e-4):
    tie = (r == r[:, :1]).all(dim=1, keepdim=True)
    centred = (r - r.mean(dim=1, keepdim=True)).masked_fill(tie, 0.0)
    return centred / (r.std(dim=1, keepdim=True) + eps)


def kl(logp, logp_ref):
    return torch.exp(logp_ref - logp) - (logp_ref - logp) - 1


def objective(per_token, mask, aggregation, L=None):
    m = mask.float()
    if aggregation == "sequence":
        return ((per_token * m).sum(1) / m.sum(1)).mean()
    if aggregation == "token":
        return (per_token * m).sum() / m.sum()
    if aggregation == "unmasked":
        return per_token.mean()
    return (per_token * m).sum(1).mean() / L


def loss(logp, old, ref, adv, mask, epsilon=0.2, beta=0.04, aggregation="sequence", **wrong):
    ratio = torch.exp(logp - old)
    A = adv[:, None]
    pick = torch.max if wrong.get("max") else torch.min
    if wrong.get("clip_advantage"):
        surrogate = pick(ratio * A, ratio * A.clamp(1 - epsilon, 1 + epsilon))
    else:
        surrogate = pick(ratio * A, ratio.clamp(1 - epsilon, 1 + epsilon) * A)
    per_token = surrogate - wrong.get("kl_sign", 1) * beta * kl(logp, ref)
    return -wrong.get("sign", 1) * objective(per_token, mask, aggregation, wrong.get("L"))


def dr_grpo(logp, old, ref, rewards, mask, L, epsilon=0.2, beta=0.04, **wrong):
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if wrong.get("std"):
        centred = advantages(rewards)
    aggregation = wrong.get("aggregation", "constant")
    return loss(
        logp, old, ref, centred.flatten(), mask, epsilon, beta, aggregation, L=wrong.get("L", L)
    )


def scaled(fn, by=1.01):
    def wrong(*args):
        out = fn(*args)
        return out * by if out else out + 0.01

    return wrong


LAB4 = [
    (
        lab4.reward,
        reward,
        [
            (reward_with(r"<(\d{1,12})>"), "digits other than 0-9"),
            (reward_with(r"<([0-9]{1,12})>", finished_matters=False), "cut off"),
            (reward_with(r"<([0-9]{1,12})>", find="search"), "other text around it"),
            (reward_with(r"^<([0-9]{1,12})>$", find="match"), "trailing newline"),
            (reward_with(r"<([0-9]{1,12})>", both=False), "earns both parts"),
            (reward_with(r"<([0-9]{1,12})>", weights=(0.1, 1.0)), "ignores the weights"),
            (untagged_earns_format, "untagged number"),
            (reward_with(r"<([0-9]+)>"), "any length"),
        ],
    ),
    (
        lab4.group_advantages,
        advantages,
        [
            (
                lambda r: (
                    (r - r.mean(1, keepdim=True)).masked_fill(
                        (r == r[:, :1]).all(1, keepdim=True), 0
                    )
                    / (r.std(1, unbiased=False, keepdim=True) + 1e-4)
                ),
                "population std",
            ),
            (
                lambda r: (
                    (r - r.mean()).masked_fill((r == r[:, :1]).all(1, keepdim=True), 0)
                    / (r.std() + 1e-4)
                ),
                "over the whole batch",
            ),
            (
                lambda r: (
                    (r - r.mean()).masked_fill((r == r[:, :1]).all(1, keepdim=True), 0)
                    / (r.std(1, keepdim=True) + 1e-4)
                ),
                "mean of the whole batch",
            ),
            (lambda r: advantages(r, eps=1e-12), "forgets eps"),
            (
                lambda r: (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4),
                "exactly 0",
            ),
            (
                lambda r: (
                    advantages(r)
                    * (r.std(1, keepdim=True) + 1e-4)
                    / (
                        (advantages(r) * (r.std(1, keepdim=True) + 1e-4))
                        .abs()
                        .amax(1, keepdim=True)
                        + 1e-4
                    )
                ),
                "largest",
            ),
            (
                lambda r: (
                    r.masked_fill((r == r[:, :1]).all(1, keepdim=True), 0)
                    / (r.std(1, keepdim=True) + 1e-4)
                ),
                "subtract the group mean",
            ),
            (
                lambda r: (
                    advantages(r)
                    * (r.std(1, keepdim=True) + 1e-4)
                    / (r.var(1, keepdim=True) + 1e-4)
                ),
                "variance",
            ),
        ],
    ),
    (
        lab4.kl_estimator,
        kl,
        [
            (lambda lp, lr: kl(lr, lp), "upside down"),
            (lambda lp, lr: lp - lr, "k1"),
            (lambda lp, lr: lr - lp, "log-ratio"),
            (lambda lp, lr: kl(lp, lr) + 1, "forgets the -1"),
            (lambda lp, lr: torch.exp(lr - lp) + (lr - lp) - 1, "sign is wrong"),
            (lambda lp, lr: (lp - lr) ** 2 / 2, "k2"),
        ],
    ),
    (
        lab4.grpo_loss,
        loss,
        [
            (lambda *a: loss(*a, aggregation="token"), "all tokens of the batch"),
            (lambda *a: loss(*a, aggregation="unmasked"), "padding"),
            (
                lambda *a: loss(*a, aggregation="constant", L=a[4].shape[1]),
                "padded width",
            ),
            (lambda *a: loss(*a, max=True), "max of"),
            (lambda *a: loss(*a, clip_advantage=True), "clips the advantage"),
            (lambda *a: loss(*a, sign=-1), "return -J"),
            (lambda *a: loss(*a, kl_sign=-1), "KL term has the wrong sign"),
            (lambda *a: loss(*a, sign=-1, kl_sign=-1), "with the KL term added"),
            (lambda lp, old, *a: loss(2 * old - lp, old, *a), "upside down"),
        ],
    ),
    (
        lab4.dr_grpo_loss,
        dr_grpo,
        [
            (lambda *a: dr_grpo(*a, std=True), "std"),
            (lambda *a: dr_grpo(*a, aggregation="sequence"), "length"),
            (lambda *a: dr_grpo(*a, aggregation="token"), "DAPO"),
            (
                lambda lp, old, ref, r, mask, L, *a: dr_grpo(
                    lp, old, ref, r, mask, mask.shape[1], *a
                ),
                "padded width",
            ),
            (lambda *a: dr_grpo(*a, std=True, aggregation="sequence"), "GRPO's loss"),
            (
                lambda lp, old, ref, r, *a: loss(
                    lp, old, ref, r.flatten(), a[0], *a[2:], aggregation="constant", L=a[1]
                ),
                "rewards as advantages",
            ),
        ],
    ),
]


@pytest.mark.parametrize("check, right, mistakes", LAB4, ids=lambda x: getattr(x, "__name__", ""))
def test_lab4_checks(check, right, mistakes, capsys):
    assert check(right) is right
    assert "✓" in capsys.readouterr().out
    for wrong, message in mistakes:
        with pytest.raises(CheckFailedError, match=message):
            check(wrong)
    with pytest.raises(CheckFailedError, match="not right yet"):
        check(scaled(right))


def test_the_reward_check_feeds_garbage_and_a_grader_that_raises_fails():
    def fragile(completion, answer, finished, format_reward, accuracy_reward):
        if not (finished and completion.startswith("<") and completion.endswith(">")):
            return 0.0
        value = int(completion[1:-1])  # raises on "<>" and on "<1<2>>"
        return format_reward + (accuracy_reward if value == answer else 0.0)

    with pytest.raises(CheckFailedError, match="raised ValueError"):
        lab4.reward(fragile)


def step(policy, opt, rollout, rewards, logp_ref, epsilon=0.2, beta=0.04, grad_clip=1.0, **wrong):
    A = advantages(rewards)
    A = A.T.flatten() if wrong.get("transpose") else A.flatten()
    if wrong.get("raw"):
        A = rewards.flatten()
    logp = grpo.completion_logprobs(policy, rollout)
    old = logp if wrong.get("no_detach") else logp.detach()
    value = loss(logp, old, logp_ref, A, rollout.mask, epsilon, beta)
    if not wrong.get("keep_grad"):
        opt.zero_grad()
    (wrong.get("sign", 1) * value).backward()
    if not wrong.get("no_clip"):
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    opt.step()
    return value.detach()


STEP_MISTAKES = [
    ({"keep_grad": True}, "zero_grad"),
    ({"no_detach": True}, "must be a constant"),
    ({"no_clip": True}, "clip the gradient norm"),
    ({"sign": -1}, "climbs the loss"),
    ({"raw": True}, "rewards as advantages"),
    ({"transpose": True}, "wrong order"),
]


def test_the_step_check(capsys):
    assert lab4.grpo_step(step) is step
    assert "✓" in capsys.readouterr().out
    for wrong, message in STEP_MISTAKES:
        with pytest.raises(CheckFailedError, match=message):
            lab4.grpo_step(lambda *a, w=wrong: step(*a, **w))
    with pytest.raises(CheckFailedError, match="not right yet"):
        lab4.grpo_step(lambda *a: 1.01 * step(*a))


def test_the_step_check_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    lab4.grpo_step(step)
    assert torch.equal(torch.random.get_rng_state(), before)
