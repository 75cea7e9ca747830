r"""Distillation: a small student learns from an RL-trained teacher, as R1's small models did.

The R1 report (DeepSeek-AI 2025) built its distilled models in two steps: the RL-trained teacher
answered many prompts, only the answers a grader accepted were kept (*rejection sampling*), and
small base models were fine-tuned on those answers with the ordinary next-token cross-entropy
(*supervised fine-tuning*, SFT), no RL. That needs only the teacher's text. Hinton, Vinyals and
Dean (2015, arXiv 1503.02531) distil with more: the teacher's whole next-token distribution,
softened by a temperature τ, is the target (*soft labels*, logit distillation).

    rejection sampling   keep o ~ π_teacher(· | q) if is_correct(o, answer(q))
    SFT                  L = -1/|M| Σ_{(i,t) ∈ M} log π_student(o_{i,t} | q_i, o_{i,<t})
    logit distillation   L = τ² / |M| Σ_{(i,t) ∈ M} KL(p_teacher^τ || p_student^τ),
                         p^τ = softmax(z / τ)

M is the set of completion positions: the prompt is masked (its operands are random, not
something to learn) and so is the padding after the end of each completion.

Compute is counted in FLOPs with the usual estimates of Kaplan et al. (2020): a forward pass
costs 2·N·D and training (forward and backward) 6·N·D, for N parameters and D token positions.
The course's convention: N counts every parameter that multiplies each token, which is all but
the input embedding table (a lookup, no multiplications; the output head is a matrix product and
counts); D counts every position a pass processes, prompt and padding included, because the
hardware computes them; attention's context-dependent term (about 2·n_layer·context·d_model per
token) is left out, under a percent of the total at these sixteen-token contexts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from effllm import economics
from effllm.grpo import GRPOConfig, training_problems
from effllm.rl_tasks import AdditionTask, Problem, is_correct
from effllm.sampling import sample_group
from effllm.train import train

Filter = Callable[[Sequence[str], Sequence[int], Sequence[bool]], list[bool]]


# --- rejection sampling ---------------------------------------------------------------------


def keep_correct(
    completions: Sequence[str], answers: Sequence[int], finished: Sequence[bool]
) -> list[bool]:
    """Rejection sampling's filter: keep a completion iff it is graded correct.

    completions: (n,) decoded texts (EOS not included); answers: (n,) the true sums; finished:
    (n,) whether EOS came within the length limit. Returns (n,) booleans: well-formed *and*
    right (:func:`effllm.rl_tasks.is_correct`), so a tagged wrong sum or a cut-off answer is
    dropped. This is how R1's SFT data was built: sample, grade, keep what passes.
    """
    return [is_correct(c, a, f) for c, a, f in zip(completions, answers, finished, strict=True)]


def grpo_prompts(task: AdditionTask, cfg: GRPOConfig) -> list[Problem]:
    """Every prompt a GRPO run with ``cfg`` draws, in order (``cfg.steps`` x ``prompts_per_step``):
    the prompts the teacher answers, so that distillation and RL see the same questions."""
    return [p for step in range(1, cfg.steps + 1) for p in training_problems(task, cfg, step)]


@dataclass
class TeacherSamples:
    """The completions a teacher drew and the filter kept, one problem per kept completion."""

    problems: list[Problem]
    completions: list[str]
    drawn: int  # completions sampled before filtering

    @property
    def kept(self) -> int:
        return len(self.completions)

    @property
    def yield_rate(self) -> float:
        """Kept / drawn: the share of the teacher's samples that pass the filter."""
        return self.kept / self.drawn


@torch.no_grad()
def rejection_sample(
    teacher: nn.Module,
    task: AdditionTask,
    problems: list[Problem],
    k: int,
    temperature: float = 1.0,
    seed: int = 0,
    keep: Filter = keep_correct,
) -> TeacherSamples:
    """Sample ``k`` completions per problem from ``teacher`` (one batch, KV cache) and keep
    those that ``keep`` accepts. Generation costs :func:`forward_flops` of ``len(problems) k``
    sequences."""
    device = next(teacher.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    prompts = task.encode_prompts(problems).to(device)
    roll = sample_group(teacher, prompts, k, task.max_completion_len, temperature, None, generator)
    texts = roll.texts()
    repeated = [p for p in problems for _ in range(k)]
    kept = keep(texts, [p.answer for p in repeated], roll.finished.tolist())
    pairs = [(p, t) for p, t, ok in zip(repeated, texts, kept, strict=True) if ok]
    return TeacherSamples([p for p, _ in pairs], [t for _, t in pairs], len(texts))


# --- the two distillation losses ------------------------------------------------------------


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 2.0,
) -> torch.Tensor:
    """Hinton et al.'s soft-label loss: τ² · mean over masked positions of
    KL(p_teacher^τ || p_student^τ), with p^τ = softmax(logits / τ) on *both* sides.

    student_logits, teacher_logits: (N, T, V); mask: (N, T), True where a completion token is
    predicted (padding and prompt False). Returns a scalar.

    The direction is the *forward* KL, teacher first: Σ_v p_T(v) log(p_T(v) / p_S(v)). It is the
    cross-entropy against the teacher's soft labels minus the teacher's entropy (a constant for
    the student), so with a one-hot teacher it is exactly SFT's loss; it asks the student to
    cover every token the teacher gives mass to, on the teacher's own samples. The reverse KL,
    KL(p_S || p_T), is mode-seeking and is what on-policy distillation uses on the student's
    samples. The τ² keeps the gradients' size independent of τ: softening divides the gradient
    with respect to the logits by τ, and the smaller differences between the softened
    distributions by about τ again.
    """
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)  # (N, T)
    mask = mask.to(kl.dtype)
    return temperature**2 * (kl * mask).sum() / mask.sum().clamp(min=1)


SoftLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


class _SoftTargets(nn.Module):
    """A student whose loss is a soft-label ``loss`` against stored teacher logits, so that
    :func:`effllm.train.train` can minimise it: ``forward(x, rows)`` with rows the indices of x's
    examples in the stored tensors (teacher_logits: (n, T, V); mask: (n, T))."""

    def __init__(
        self,
        student: nn.Module,
        teacher_logits: torch.Tensor,
        mask: torch.Tensor,
        temperature: float,
        loss: SoftLoss,
    ) -> None:
        super().__init__()
        self.student = student
        self.register_buffer("teacher_logits", teacher_logits, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.temperature = temperature
        self.loss = loss

    def forward(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = self.student(x)
        targets = self.teacher_logits[rows]
        return logits, self.loss(logits, targets, self.mask[rows], self.temperature)


def _batches(n: int, batch: int, seed: int, device: torch.device) -> Callable[[], torch.Tensor]:
    """Random example indices, ``batch`` at a time, from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return lambda: torch.randint(n, (batch,), generator=generator).to(device)


def sft(
    student: nn.Module,
    task: AdditionTask,
    samples: TeacherSamples,
    steps: int,
    batch: int,
    lr: float,
    seed: int = 0,
    desc: str = "SFT",
    teacher: nn.Module | None = None,
    loss: SoftLoss = distillation_loss,
    temperature: float = 2.0,
) -> pd.DataFrame:
    """Fine-tune ``student`` in place on the teacher's kept completions; return train()'s history.

    Hard labels (no ``teacher``): the cross-entropy of the completion tokens, prompt and padding
    masked (:meth:`effllm.rl_tasks.AdditionTask.sft_batch` puts -100 there). Soft labels: pass
    the ``teacher``; ``loss`` (:func:`distillation_loss` or a function of its signature) is then
    minimised at ``temperature``. The teacher's logits on every kept example are computed once,
    in one forward pass (:func:`forward_flops` of ``samples.kept`` sequences).
    Both draw ``batch`` examples per step at random, with replacement, from ``seed``.
    """
    device = next(student.parameters()).device
    x, y = (t.to(device) for t in task.sft_batch(samples.problems, samples.completions))
    draw = _batches(samples.kept, batch, seed, device)
    if teacher is None:
        model: nn.Module = student

        def get_batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
            rows = draw()
            return x[rows], y[rows]
    else:
        with torch.no_grad():
            teacher_logits = teacher.eval()(x)[0].float()
        model = _SoftTargets(student, teacher_logits, y != -100, temperature, loss)

        def get_batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
            rows = draw()
            return x[rows], rows

    return train(model, get_batch, steps, lr=lr, eval_every=steps, eval_batches=1, desc=desc)


# --- compute --------------------------------------------------------------------------------


def flop_params(model: nn.Module) -> int:
    """N of the FLOP estimates: every parameter but the input embedding table (a lookup)."""
    return model.num_params() - model.embed.weight.numel()


def positions(task: AdditionTask) -> int:
    """Token positions of one sequence in every pass: prompt + generation budget - 1.

    Sampling runs the prompt once and then one position per new token but the last; scoring
    and SFT run ``tokens[:, :-1]`` of a sequence padded to the budget. All three come to
    P + L - 1 positions when a completion uses the whole budget L, which is what a batch is
    padded to (sampling stops early only once every row has ended): an upper bound.
    """
    return task.prompt_len + task.max_completion_len - 1


def forward_flops(n_params: int, sequences: int, task: AdditionTask) -> float:
    """2·N·D: forward passes (the teacher's logits, a reference model's scores) over
    ``sequences`` of :func:`positions` each. Generating them with the KV cache costs the same."""
    return economics.training_flops(n_params, sequences * positions(task), 2.0)


def sft_flops(n_params: int, sequences: int, task: AdditionTask) -> float:
    """6·N·D: supervised training (a warm-up or SFT) on ``sequences``, forward and backward."""
    return economics.training_flops(n_params, sequences * positions(task))


def rl_flops(n_params: int, tokens: float, mu: int = 1) -> float:
    """(2 + 2 + 6μ)·N·D for GRPO on D = ``tokens`` positions of sampled completions: sampling
    them (2·N·D), scoring them under the reference model (2·N·D) and μ training passes
    (6·N·D each; the first also gives π_θold)."""
    sample = economics.training_flops(n_params, tokens, 2.0)
    reference = economics.training_flops(n_params, tokens, 2.0)
    return sample + reference + mu * economics.training_flops(n_params, tokens)


def grpo_flops(n_params: int, cfg: GRPOConfig, task: AdditionTask) -> float:
    """:func:`rl_flops` of a :func:`effllm.grpo.train_grpo` run: ``cfg.steps`` x
    ``prompts_per_step`` x G completions. Held-out evaluation is not counted."""
    completions = cfg.steps * cfg.prompts_per_step * cfg.G
    return rl_flops(n_params, completions * positions(task), cfg.mu)
