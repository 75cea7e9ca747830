"""Lab 9's checks: rejection sampling's filter, Hinton et al.'s soft-label distillation loss, and
the FLOPs of a GRPO run.

Each function takes the student's function, checks it against :mod:`effllm.distill` with
:func:`effllm.checks.verify` on small seeded inputs, and returns the function the lab goes on
with.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
import torch.nn.functional as F

from effllm import distill, rl_tasks
from effllm.checks import Case, Mistake, log_uniform, verify

# --- the rejection-sampling filter ----------------------------------------------------------


def _completion(rng: random.Random, answer: int, kind: str) -> tuple[str, bool]:
    """One completion of ``kind`` for a problem whose sum is ``answer``: (text, finished)."""
    wrong = answer + rng.choice([-10, -1, 1, 2, 10, 100])
    return {
        "right": (f"<{answer}>", True),
        "wrong": (f"<{wrong}>", True),
        "untagged": (str(answer), True),
        "cut off": (f"<{answer}>", False),
        "cut off early": (f"<{str(answer)[:-1]}", False),
        "text around": (f"<{answer}> {answer}", True),
        "garbage": ("<1<2>>\ufffd", True),
    }[kind]


KINDS = ("right", "wrong", "untagged", "cut off", "cut off early", "text around", "garbage")


def _filter_cases(seed: int) -> list[Case]:
    """Batches of the teacher's completions of every kind, shuffled, plus a batch of right ones."""
    rng = random.Random(seed)
    cases = []
    for n in (7, 12, 20):
        kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(n - len(KINDS))]
        rng.shuffle(kinds)
        answers = [rng.randrange(10, 199) for _ in kinds]
        drawn = [_completion(rng, a, k) for a, k in zip(answers, kinds, strict=True)]
        texts, finished = [t for t, _ in drawn], [f for _, f in drawn]
        cases.append(Case((texts, answers, finished), f"a batch of {n} completions of all kinds"))
    answers = [rng.randrange(10, 199) for _ in range(5)]
    cases.append(
        Case(([f"<{a}>" for a in answers], answers, [True] * 5), "five right answers (keep all)")
    )
    return cases


def keep_correct(student: Callable[..., list[bool]]) -> Callable[..., list[bool]]:
    """Keep a completion iff it is well-formed (finished, '<digits>' and nothing else) and right."""
    return verify(
        "keep_correct",
        student,
        lambda texts, answers, finished: distill.keep_correct(texts, answers, finished),
        _filter_cases(0),
        [
            Mistake(
                lambda texts, answers, finished: [
                    rl_tasks.is_well_formed(t, f) for t, f in zip(texts, finished, strict=True)
                ],
                "it keeps every well-formed completion, right or wrong: a tagged wrong sum would "
                "teach the student the teacher's mistakes; keep only graded-correct ones",
            ),
            Mistake(
                lambda texts, answers, finished: [
                    rl_tasks.parse_answer(t) == a for t, a in zip(texts, answers, strict=True)
                ],
                "it keeps a completion that was cut off at the length limit (finished=False): "
                "the student would learn to stop without the end-of-sequence token",
            ),
            Mistake(
                lambda texts, answers, finished: [
                    f and str(a) in t for t, a, f in zip(texts, answers, finished, strict=True)
                ],
                "it keeps any completion that contains the right number, tagged or not, with "
                "text around it or not; the grader accepts '<sum>' and nothing else",
            ),
        ],
        stand_in="distill.keep_correct",
    )


# --- the soft-label loss --------------------------------------------------------------------


def _logit_cases(seed: int) -> list[Case]:
    """Student and teacher logits (N, T, V), masks with padding of varied length, several τ."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for (N, T, V), tau, spread in (
        ((3, 5, 7), 2.0, 2.0),
        ((4, 6, 11), 1.0, 3.0),
        ((2, 4, 5), 4.0, 1.0),
        ((5, 3, 9), 0.5, 1.5),
    ):
        s = torch.randn(N, T, V, generator=g) * spread
        t = torch.randn(N, T, V, generator=g) * spread
        lengths = torch.randint(1, T + 1, (N,), generator=g)
        lengths[0] = T - 1  # some padding in every case
        mask = torch.arange(T)[None, :] < lengths[:, None]
        cases.append(Case((s, t, mask, tau), f"{N} sequences of {T} tokens, V={V}, τ={tau:g}"))
    return cases


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum()


def distillation_loss(student: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """τ² · mean over masked positions of KL(softmax(z_T/τ) || softmax(z_S/τ))."""

    def soft(z: torch.Tensor, tau: float) -> torch.Tensor:
        return F.log_softmax(z.float() / tau, dim=-1)

    return verify(
        "distillation_loss",
        student,
        distill.distillation_loss,
        _logit_cases(0),
        [
            Mistake(
                lambda s, t, m, tau: tau**2 * _masked_mean(_kl(soft(s, tau), soft(t, tau)), m),
                "it computes KL(student || teacher), the reverse direction; Hinton et al.'s loss "
                "is KL(teacher || student) = Σ p_teacher (log p_teacher - log p_student), the "
                "cross-entropy against the teacher's soft labels minus their entropy",
            ),
            Mistake(
                lambda s, t, m, tau: _masked_mean(_kl(soft(t, tau), soft(s, tau)), m),
                "it leaves out the factor τ²: softening by τ shrinks the gradients by about τ², "
                "and Hinton et al. multiply by τ² to undo it",
            ),
            Mistake(
                lambda s, t, m, tau: tau**2 * _masked_mean(_kl(soft(t, 1.0), soft(s, tau)), m),
                "it softens only the student's logits; divide both the teacher's and the "
                "student's logits by τ before the softmax",
            ),
            Mistake(
                lambda s, t, m, tau: tau**2 * _kl(soft(t, tau), soft(s, tau)).mean(),
                "it averages over every position, padding included; average over the masked "
                "completion tokens only (sum of KL × mask, divided by mask.sum())",
            ),
        ],
        stand_in="distill.distillation_loss",
    )


# --- compute --------------------------------------------------------------------------------


def rl_flops(student: Callable[[float, float, int], float]) -> Callable[[float, float, int], float]:
    """(2 + 2 + 6μ)·N·D: sample, score under the reference, μ training passes."""
    N, D = log_uniform(5, 0, 1e4, 1e11), log_uniform(5, 1, 1e3, 1e12)
    mus = [1, 2, 4, 1, 3]
    cases = [
        Case((n, d, mu), f"N={n:.3g}, D={d:.3g}, μ={mu}")
        for n, d, mu in zip(N, D, mus, strict=True)
    ]
    return verify(
        "rl_flops",
        student,
        distill.rl_flops,
        cases,
        [
            Mistake(
                lambda n, d, mu: 6 * mu * n * d,
                "it counts the training passes only; GRPO first samples the completions (a "
                "forward pass, 2·N·D) and scores them under the reference model (2·N·D more)",
            ),
            Mistake(
                lambda n, d, mu: (2 + 6 * mu) * n * d,
                "it leaves out the reference model's forward pass (2·N·D), which the KL "
                "penalty needs on every sampled token",
            ),
            Mistake(
                lambda n, d, mu: 10 * n * d,
                "it ignores μ: each of the μ gradient steps on a batch of samples is a forward "
                "and backward pass, 6·N·D",
            ),
        ],
        stand_in="distill.rl_flops",
    )
