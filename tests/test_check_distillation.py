"""Lab 9's checks (effllm.check_distillation): the right function passes, each known mistake is
rejected with its message, and a result off by 1% (or a flipped decision) is rejected."""

import re

import pytest
import torch

from effllm import check_distillation as lab9
from effllm.checks import CheckFailedError

TAG = re.compile(r"<([0-9]{1,12})>")


def keep(texts, answers, finished):
    out = []
    for t, a, f in zip(texts, answers, finished, strict=True):
        match = TAG.fullmatch(t)
        out.append(bool(f and match and int(match.group(1)) == a))
    return out


def keep_formed(texts, answers, finished):
    return [bool(f and TAG.fullmatch(t)) for t, f in zip(texts, finished, strict=True)]


def keep_cut_off(texts, answers, finished):
    return keep(texts, answers, [True] * len(texts))


def keep_contains(texts, answers, finished):
    return [f and str(a) in t for t, a, f in zip(texts, answers, finished, strict=True)]


def kd(s, t, mask, tau, direction="forward", square=True, soften_teacher=True, padding=False):
    log_s = torch.log_softmax(s / tau, dim=-1)
    log_t = torch.log_softmax(t / (tau if soften_teacher else 1.0), dim=-1)
    if direction == "forward":
        kl = (log_t.exp() * (log_t - log_s)).sum(-1)
    else:
        kl = (log_s.exp() * (log_s - log_t)).sum(-1)
    m = mask.float()
    mean = kl.mean() if padding else (kl * m).sum() / m.sum()
    return (tau**2 if square else 1.0) * mean


def flops(n, d, mu):
    return 2 * n * d + 2 * n * d + 6 * mu * n * d


LAB9 = [
    (
        lab9.keep_correct,
        keep,
        [
            (keep_formed, "right or wrong"),
            (keep_cut_off, "cut off"),
            (keep_contains, "contains the right number"),
        ],
    ),
    (
        lab9.distillation_loss,
        kd,
        [
            (lambda s, t, m, tau: kd(s, t, m, tau, direction="reverse"), "reverse direction"),
            (lambda s, t, m, tau: kd(s, t, m, tau, square=False), "factor τ²"),
            (lambda s, t, m, tau: kd(s, t, m, tau, soften_teacher=False), "only the student"),
            (lambda s, t, m, tau: kd(s, t, m, tau, padding=True), "padding included"),
        ],
    ),
    (
        lab9.rl_flops,
        flops,
        [
            (lambda n, d, mu: 6 * mu * n * d, "training passes only"),
            (lambda n, d, mu: (2 + 6 * mu) * n * d, "reference model"),
            (lambda n, d, mu: 10 * n * d, "ignores μ"),
        ],
    ),
]


def nudged(fn):
    """fn's result scaled by 1.01, or each of its decisions flipped."""

    def wrong(*args):
        out = fn(*args)
        return [not x for x in out] if isinstance(out, list) else out * 1.01

    return wrong


@pytest.mark.parametrize("check, right, mistakes", LAB9, ids=lambda x: getattr(x, "__name__", ""))
def test_the_right_function_passes_and_every_mistake_is_named(check, right, mistakes, capsys):
    assert check(right) is right
    assert "✓" in capsys.readouterr().out
    for wrong, words in mistakes:
        with pytest.raises(CheckFailedError, match=re.escape(words)):
            check(wrong)


@pytest.mark.parametrize("check, right, mistakes", LAB9, ids=lambda x: getattr(x, "__name__", ""))
def test_a_result_off_by_one_percent_fails(check, right, mistakes):
    with pytest.raises(CheckFailedError):
        check(nudged(right))


def test_the_filter_sees_every_kind_of_completion():
    cases = lab9._filter_cases(0)
    texts = [t for c in cases for t in c.args[0]]
    assert any("\ufffd" in t for t in texts) and any(not t.startswith("<") for t in texts)
    assert sum(keep(*c.args).count(True) for c in cases) > 0
    assert sum(keep(*c.args).count(False) for c in cases) > 0
