r"""Lab 4's checks: the rule-based reward, group-relative advantages, the k3 KL estimator, GRPO's
clipped objective with its per-token mask and 1/|o_i|, one GRPO step on a tiny model, and a
build exercise (Dr. GRPO's loss).

Each function takes the student's function, checks it against :mod:`effllm.rl_tasks` or
:mod:`effllm.grpo` with :func:`effllm.checks.verify` on small seeded inputs, and returns the
function the lab goes on with. Log-probabilities are (N, T) for N = B x G sampled outputs of at
most T tokens, group by group (output g of question b is row b G + g), as in
:func:`effllm.grpo.grpo_loss`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from effllm import grpo, rl_tasks
from effllm.attention import AttentionConfig
from effllm.checks import Case, Mistake, verify
from effllm.model import ModelConfig, Transformer
from effllm.rl_tasks import AdditionTask
from effllm.sampling import sample_group

# --- the reward -----------------------------------------------------------------------------

_ASCII_IN_TAG = re.compile(r"<([0-9]{1,12})>")


def _graded(pattern: re.Pattern, find: str = "fullmatch", cut_off_counts: bool = False):
    """A reward made with ``pattern`` and the right weights, for the mistakes below."""

    def reward(completion, answer, finished, format_reward, accuracy_reward):
        match = getattr(pattern, find)(completion)
        if match is None or not (finished or cut_off_counts):
            return 0.0
        digits = match.group(1)
        value = int(digits) if len(digits) < 4000 else -1  # int() refuses over 4300 digits
        return format_reward + (accuracy_reward if value == answer else 0.0)

    return reward


def _reward_cases() -> list[Case]:
    """Well-formed, wrong, untagged, cut-off and garbage completions, under several weights."""
    weights = [(0.1, 1.0), (0.25, 2.0), (1.0, 1.0), (0.5, 0.3)]
    texts = [
        ("<495>", 495, True, "a right, tagged answer"),
        ("<496>", 495, True, "a wrong, tagged answer"),
        ("<0495>", 495, True, "a right answer with a leading zero (the number 495)"),
        ("495", 495, True, "a right number without the tag"),
        ("<495>", 495, False, "a right answer cut off before the end-of-sequence token"),
        ("", 495, True, "an empty completion"),
        ("<>", 0, True, "empty tags"),
        ("<1<2>>\ufffd", 2, True, "garbage with a replacement character"),
        ("the sum is <495>", 495, True, "a tagged answer with text before it"),
        ("<495> done", 495, True, "a tagged answer with text after it"),
        ("<495>\n", 495, True, "a tagged answer followed by a newline"),
        ("<-5>", -5, True, "a negative number"),
        ("<4 95>", 495, True, "a space between the digits"),
        ("<\uff14\uff19\uff15>", 495, True, "full-width digits '<４９５>'"),
        ("<\u0664\u0669\u0665>", 495, True, "Arabic-Indic digits '<٤٩٥>'"),
        ("<" + "9" * 13 + ">", 10**13 - 1, True, "thirteen digits"),
        ("<" + "7" * 5000 + ">", 7, True, "a 5000-digit number"),
        ("<" * 3000 + "1" * 3000, 1, True, "a long run of garbage"),
        ("<12>", 12, True, "a right two-digit answer"),
    ]
    cases = []
    for k, (text, answer, finished, label) in enumerate(texts):
        f, a = weights[k % len(weights)]
        cases.append(
            Case((text, answer, finished, f, a), f"{label} (format {f:g}, accuracy {a:g})")
        )
    return cases


def reward(student: Callable[..., float]) -> Callable[..., float]:
    """r = format_reward [well-formed] + accuracy_reward [well-formed and right]."""

    def right(completion, answer, finished, format_reward, accuracy_reward):
        return rl_tasks.reward(completion, answer, finished, format_reward, accuracy_reward)

    return verify(
        "reward",
        student,
        right,
        _reward_cases(),
        [
            Mistake(
                _graded(re.compile(r"<(\d{1,12})>")),
                "it reads digits other than 0-9 (full-width '４' or Arabic-Indic '٤'): Python's "
                "\\d and str.isdigit() accept every Unicode digit and int() reads them; the task "
                "asks for ASCII digits, [0-9]",
            ),
            Mistake(
                _graded(re.compile(r"<([0-9]+)>")),
                "it accepts numbers of any length; the course's grader reads 1 to 12 digits "
                "([0-9]{1,12}), so that a model cannot make it parse a huge number",
            ),
            Mistake(
                _graded(_ASCII_IN_TAG, cut_off_counts=True),
                "it grades a completion that was cut off (finished=False); an answer that never "
                "reached the end-of-sequence token is not well-formed and earns 0",
            ),
            Mistake(
                _graded(_ASCII_IN_TAG, find="search"),
                "it accepts a tagged number with other text around it; a well-formed completion "
                "is the tag and nothing else (re.fullmatch, not re.search)",
            ),
            Mistake(
                _graded(re.compile(r"^<([0-9]{1,12})>$"), find="match"),
                "it accepts a trailing newline: in a regular expression, $ also matches before a "
                "final '\\n'; use re.fullmatch (or \\Z)",
            ),
            Mistake(
                lambda c, ans, fin, f, a: (
                    0.0
                    if (rl_tasks.parse_answer(c) is None or not fin)
                    else (a if rl_tasks.parse_answer(c) == ans else f)
                ),
                "a right answer earns both parts, format_reward + accuracy_reward, not the "
                "accuracy reward alone",
            ),
            Mistake(
                lambda c, ans, fin, f, a: rl_tasks.reward(c, ans, fin),
                "it ignores the weights passed in and uses 0.1 and 1.0; use format_reward and "
                "accuracy_reward",
            ),
            Mistake(
                lambda c, ans, fin, f, a: (
                    rl_tasks.reward(c, ans, fin, f, a)
                    + (
                        f
                        if fin and rl_tasks.parse_answer(c) is None and c.strip().isdigit()
                        else 0.0
                    )
                ),
                "it gives the format reward to an untagged number; only '<digits>' is well-formed",
            ),
        ],
        stand_in="rl_tasks.reward",
    )


# --- group-relative advantages ----------------------------------------------------------------


def _reward_groups(seed: int) -> list[Case]:
    """Rewards (B, G): the task's values, continuous ones, a near-tie and exact ties."""
    g = torch.Generator().manual_seed(seed)
    task_values = torch.tensor([0.0, 0.1, 1.1])
    cases = []
    for B, G in ((3, 8), (2, 4), (4, 2), (1, 6)):
        r = task_values[torch.randint(3, (B, G), generator=g)]
        r[:, 0], r[:, 1] = 0.0, 1.1  # every group has some signal
        cases.append(Case((r,), f"{B} groups of {G} of the task's rewards"))
    cases.append(Case((torch.randn(3, 5, generator=g) * 2 + 1,), "3 groups of 5 random rewards"))
    cases.append(
        Case(
            (torch.tensor([[0.1, 0.1, 0.1, 0.101], [0.0, 1.1, 0.1, 0.0]]),),
            "a group whose rewards differ by 0.001 (std near eps)",
        )
    )
    cases.append(
        Case(
            (torch.tensor([[2.1] * 6, [1.1, 2.1, 1.0, 1.0, 2.1, 1.1], [0.1] * 6]),),
            "groups whose rewards are all equal (2.1 and 0.1)",
        )
    )
    return cases


def _ties_zero(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return A.masked_fill((r == r[:, :1]).all(dim=1, keepdim=True), 0.0)


def _centred(r: torch.Tensor) -> torch.Tensor:
    return _ties_zero(r - r.mean(dim=1, keepdim=True), r)


def group_advantages(
    student: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Â_i = (r_i - mean(r)) / (std(r) + eps) within each group, eps = 1e-4, sample std."""
    eps = 1e-4

    def std(r: torch.Tensor) -> torch.Tensor:
        return r.std(dim=1, keepdim=True)

    def right(rewards: torch.Tensor) -> torch.Tensor:
        return grpo.group_advantages(rewards, eps=eps)

    return verify(
        "group_advantages",
        student,
        right,
        _reward_groups(0),
        [
            Mistake(
                lambda r: _centred(r) / (r.std(dim=1, unbiased=False, keepdim=True) + eps),
                "it divides by the population std (1/G); the course, like torch's .std(), uses "
                "the sample std with 1/(G-1)",
            ),
            Mistake(
                lambda r: _ties_zero((r - r.mean()) / (r.std() + eps), r),
                "it takes the mean and std over the whole batch; the baseline is each question's "
                "own group: mean and std along dim=1, keepdim=True",
            ),
            Mistake(
                lambda r: _ties_zero((r - r.mean()) / (std(r) + eps), r),
                "it subtracts the mean of the whole batch; subtract each group's own mean "
                "(mean along dim=1)",
            ),
            Mistake(
                lambda r: _centred(r) / std(r).clamp(min=1e-12),
                "it forgets eps: divide by std + 1e-4, so that a group whose rewards barely "
                "differ does not get huge advantages",
            ),
            Mistake(
                lambda r: (r - r.mean(dim=1, keepdim=True)) / (std(r) + eps),
                "a group whose rewards are all equal must get advantage exactly 0: in floating "
                "point, r - mean(r) can be a rounding error that the division blows up "
                "(set those groups to 0, e.g. with masked_fill)",
            ),
            Mistake(
                lambda r: _centred(r) / (_centred(r).abs().amax(dim=1, keepdim=True) + eps),
                "it normalises by the largest |r - mean|; GRPO divides by the group's std",
            ),
            Mistake(
                lambda r: _ties_zero(r / (std(r) + eps), r),
                "it forgets to subtract the group mean: the mean is the baseline",
            ),
            Mistake(
                lambda r: _centred(r) / (std(r) ** 2 + eps),
                "it divides by the variance; divide by the standard deviation (its square root)",
            ),
        ],
        stand_in="grpo.group_advantages",
    )


# --- the KL estimator ---------------------------------------------------------------------------


def _logprob_pairs(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for shape, spread in (((4, 6), 0.3), ((3, 5), 1.0), ((2, 3, 4), 0.1), ((7,), 2.0)):
        logp = -torch.rand(shape, generator=g) * 3
        logp_ref = logp + spread * torch.randn(shape, generator=g)
        cases.append(Case((logp, logp_ref), f"log-probs of shape {shape}, gap ~{spread}"))
    logp = torch.log(torch.tensor([0.5, 0.9, 0.1]))
    cases.append(Case((logp, torch.log(torch.tensor([0.25, 0.9, 0.3]))), "hand-picked tokens"))
    return cases


def kl_estimator(
    student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """D = π_ref/π_θ - log(π_ref/π_θ) - 1 per token, from log-probabilities."""
    return verify(
        "kl_estimator",
        student,
        grpo.kl_estimator,
        _logprob_pairs(1),
        [
            Mistake(
                lambda lp, lr: torch.exp(lp - lr) - (lp - lr) - 1,
                "the ratio is upside down: it is π_ref/π_θ, that is exp(logp_ref - logp); "
                "π_θ/π_ref estimates the KL the other way round, D_KL[π_ref || π_θ]",
            ),
            Mistake(
                lambda lp, lr: lp - lr,
                "that is the plain log-ratio log(π_θ/π_ref) (the 'k1' estimator): unbiased too, "
                "but it is negative for some tokens; GRPO uses π_ref/π_θ - log(π_ref/π_θ) - 1",
            ),
            Mistake(
                lambda lp, lr: lr - lp,
                "that is the log-ratio log(π_ref/π_θ) alone; GRPO's estimator is "
                "π_ref/π_θ - log(π_ref/π_θ) - 1",
            ),
            Mistake(
                lambda lp, lr: torch.exp(lr - lp) - (lr - lp),
                "it forgets the -1: π_ref/π_θ - log(π_ref/π_θ) - 1 is 0 where the policies agree",
            ),
            Mistake(
                lambda lp, lr: torch.exp(lr - lp) + (lr - lp) - 1,
                "the log term's sign is wrong: π_ref/π_θ MINUS log(π_ref/π_θ), minus 1",
            ),
            Mistake(
                lambda lp, lr: 0.5 * (lp - lr) ** 2,
                "that is the 'k2' estimator ½ (log ratio)²; GRPO uses "
                "π_ref/π_θ - log(π_ref/π_θ) - 1",
            ),
        ],
        stand_in="grpo.kl_estimator",
    )


# --- the clipped objective --------------------------------------------------------------------


def _rollouts(seed: int, groups: bool = False) -> list[tuple[tuple, str]]:
    """(logp, logp_old, logp_ref, mask) of outputs of different lengths, and a label.

    The padding (mask 0) holds arbitrary numbers, so a loss that does not mask them is wrong.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for B, G, T in ((2, 4, 6), (3, 2, 5), (1, 8, 7), (2, 3, 4)):
        N = B * G
        logp_old = -torch.rand(N, T, generator=g) * 2 - 0.05
        logp = logp_old + 0.4 * torch.randn(N, T, generator=g)  # ratios beyond 1 ± ε
        logp_ref = logp_old + 0.3 * torch.randn(N, T, generator=g)
        lengths = torch.randint(1, T + 1, (N,), generator=g)
        lengths[0] = T
        mask = torch.arange(T) < lengths[:, None]
        out.append(((logp, logp_old, logp_ref, mask, B, G), f"{N} outputs of up to {T} tokens"))
    return out


def _sequence_loss_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed + 100)
    cases = []
    for k, ((logp, old, ref, mask, B, G), label) in enumerate(_rollouts(seed)):
        adv = torch.randn(B * G, generator=g)
        epsilon, beta = ((0.2, 0.04), (0.1, 0.5), (0.3, 0.1), (0.2, 0.0))[k]
        cases.append(Case((logp, old, ref, adv, mask, epsilon, beta), f"{label}, ε={epsilon}"))
    return cases


def _loss(aggregation: str = "sequence", sign: float = 1.0, kl_sign: float = 1.0, pick=torch.min):
    """The negative objective with a chosen aggregation and optional sign and min/max mistakes."""

    def loss(logp, logp_old, logp_ref, adv, mask, epsilon=0.2, beta=0.04):
        A = adv[:, None]
        ratio = torch.exp(logp - logp_old)
        surrogate = pick(ratio * A, ratio.clamp(1 - epsilon, 1 + epsilon) * A)
        per_token = surrogate - kl_sign * beta * grpo.kl_estimator(logp, logp_ref)
        m = mask.to(logp.dtype)
        if aggregation == "sequence":
            J = ((per_token * m).sum(1) / m.sum(1)).mean()
        elif aggregation == "token":
            J = (per_token * m).sum() / m.sum()
        elif aggregation == "width":
            J = ((per_token * m).sum(1) / m.shape[1]).mean()
        else:  # "unmasked"
            J = per_token.mean()
        return -sign * J

    return loss


def grpo_loss(student: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """-J(θ): 1/G Σ_i 1/|o_i| Σ_t {min[ρ Â, clip(ρ, 1-ε, 1+ε) Â] - β D_KL} (a scalar)."""

    def right(logp, logp_old, logp_ref, adv, mask, epsilon=0.2, beta=0.04):
        return grpo.grpo_loss(logp, logp_old, logp_ref, adv, mask, epsilon, beta, "sequence")[0]

    def clip_on_advantage(logp, logp_old, logp_ref, adv, mask, epsilon=0.2, beta=0.04):
        ratio = torch.exp(logp - logp_old)
        A = adv[:, None]
        per_token = torch.min(ratio * A, ratio * A.clamp(1 - epsilon, 1 + epsilon))
        per_token = per_token - beta * grpo.kl_estimator(logp, logp_ref)
        m = mask.to(logp.dtype)
        return -((per_token * m).sum(1) / m.sum(1)).mean()

    def inverted_ratio(logp, logp_old, logp_ref, adv, mask, epsilon=0.2, beta=0.04):
        return right(2 * logp_old - logp, logp_old, logp_ref, adv, mask, epsilon, beta)

    return verify(
        "grpo_loss",
        student,
        right,
        _sequence_loss_cases(2),
        [
            Mistake(
                _loss("token"),
                "it averages over all tokens of the batch (1/Σ|o_i|, DAPO's token-level loss); "
                "GRPO averages each output's tokens (1/|o_i|), then the outputs (1/G)",
            ),
            Mistake(
                _loss("unmasked"),
                "it averages over the padding too: multiply by the mask and divide each output's "
                "sum by its own length |o_i| = mask.sum(dim=1)",
            ),
            Mistake(
                _loss("width"),
                "it divides each output's sum by the padded width T, not by its length "
                "|o_i| = mask.sum(dim=1)",
            ),
            Mistake(
                _loss(pick=torch.max),
                "it takes the max of the clipped and unclipped terms; the min makes the "
                "objective a pessimistic bound, so moving ρ beyond 1 ± ε earns nothing",
            ),
            Mistake(
                clip_on_advantage,
                "it clips the advantage; clip the ratio ρ to [1-ε, 1+ε], then multiply by Â",
            ),
            Mistake(
                _loss(sign=-1.0),
                "it returns the objective J itself; the optimiser minimises, so return -J",
            ),
            Mistake(
                _loss(kl_sign=-1.0),
                "the KL term has the wrong sign: the objective subtracts β D_KL (a penalty), so "
                "-J adds it",
            ),
            Mistake(
                _loss(sign=-1.0, kl_sign=-1.0),
                "it returns J with the KL term added; return -J, where J subtracts β D_KL",
            ),
            Mistake(
                inverted_ratio,
                "the ratio is upside down: ρ = π_θ/π_θold = exp(logp - logp_old)",
            ),
        ],
        stand_in="grpo.grpo_loss (aggregation='sequence')",
    )


# --- build exercise: Dr. GRPO's loss ----------------------------------------------------------


def _dr_grpo_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed + 200)
    task_values = torch.tensor([0.0, 0.1, 1.1])
    cases = []
    for k, ((logp, old, ref, mask, B, G), label) in enumerate(_rollouts(seed)):
        r = task_values[torch.randint(3, (B, G), generator=g)]
        r[:, 0], r[:, -1] = 1.1, 0.0
        if k == 3:
            r = torch.randn(B, G, generator=g)
        L = mask.shape[1] + (0, 3, 1, 5)[k]
        epsilon, beta = ((0.2, 0.04), (0.1, 0.5), (0.3, 0.1), (0.2, 0.0))[k]
        cases.append(Case((logp, old, ref, r, mask, L, epsilon, beta), f"{label}, L={L}"))
    return cases


def dr_grpo_loss(student: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Dr. GRPO: Â_i = r_i - mean(r) per group, and 1/(G L) Σ_i Σ_t instead of 1/|o_i|."""

    def made(kind: str, aggregation: str, width: bool = False):
        def loss(logp, logp_old, logp_ref, rewards, mask, L, epsilon=0.2, beta=0.04):
            adv = grpo.advantages(rewards, kind).flatten()
            budget = mask.shape[1] if width else L
            return grpo.grpo_loss(
                logp, logp_old, logp_ref, adv, mask, epsilon, beta, aggregation, budget
            )[0]

        return loss

    return verify(
        "dr_grpo_loss",
        student,
        made("grpo_no_std", "constant"),
        _dr_grpo_cases(3),
        [
            Mistake(
                made("grpo", "constant"),
                "it still divides the advantages by the group's std; Dr. GRPO keeps only "
                "r_i - mean(r)",
            ),
            Mistake(
                made("grpo_no_std", "sequence"),
                "it still divides each output's sum by its length |o_i|; Dr. GRPO divides every "
                "output by the same constant, the generation budget L",
            ),
            Mistake(
                made("grpo_no_std", "token"),
                "it averages over all tokens of the batch (DAPO's normaliser, which depends on "
                "the sampled lengths); Dr. GRPO divides by the constant G L",
            ),
            Mistake(
                made("grpo_no_std", "constant", width=True),
                "it divides by the padded width T of this batch; divide by the budget L passed "
                "in, which does not depend on what was sampled",
            ),
            Mistake(
                made("grpo", "sequence"),
                "that is GRPO's loss (std and 1/|o_i|); Dr. GRPO drops both",
            ),
            Mistake(
                made("reinforce", "constant"),
                "it uses the rewards as advantages; subtract each group's mean reward",
            ),
        ],
        stand_in="grpo.grpo_loss(aggregation='constant') with grpo.advantages(r, 'grpo_no_std')",
    )


# --- one GRPO step ------------------------------------------------------------------------------

_TINY = ModelConfig(max_len=12, n_layer=1, d_model=16, attention=AttentionConfig("mha", 2), d_ff=32)
_TASK = AdditionTask(1)


def _step_inputs(seed: int, B: int = 3, G: int = 4) -> tuple:
    """A tiny policy with an SGD optimiser (so that every part of the step shows in the new
    weights), junk in its .grad (the previous step's), G sampled answers to B questions, their
    rewards (B, G) and log π_ref of the sampled tokens under another tiny model. The global
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy, reference = Transformer(_TINY), Transformer(_TINY)
    g = torch.Generator().manual_seed(seed)
    for p in policy.parameters():
        p.grad = torch.randn(p.shape, generator=g)
    problems = _TASK.problems(B, "train", seed=seed)
    with torch.no_grad():
        rollout = sample_group(
            policy, _TASK.encode_prompts(problems), G, _TASK.max_completion_len, generator=g
        )
        logp_ref = grpo.completion_logprobs(reference, rollout)
    rewards = torch.tensor([0.0, 0.1, 1.1])[torch.randint(3, (B, G), generator=g)]
    rewards[:, 0], rewards[:, 1] = 1.1, 0.0  # every group has some signal
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    return policy, opt, rollout, rewards, logp_ref


def _library_step(policy, opt, rollout, rewards, logp_ref, epsilon=0.2, beta=0.04, grad_clip=1.0):
    adv = grpo.group_advantages(rewards).flatten()
    return grpo.grpo_step(
        policy, opt, rollout, adv, logp_ref, None, epsilon, beta, grad_clip=grad_clip
    )[0]


def _wrong_step(
    advantages: Callable = lambda r: grpo.group_advantages(r).flatten(),
    detach: bool = True,
    zero_grad: bool = True,
    clip: bool = True,
    sign: float = 1.0,
) -> Callable:
    def step(policy, opt, rollout, rewards, logp_ref, epsilon=0.2, beta=0.04, grad_clip=1.0):
        logp = grpo.completion_logprobs(policy, rollout)
        logp_old = logp.detach() if detach else logp
        loss, _ = grpo.grpo_loss(
            logp, logp_old, logp_ref, advantages(rewards), rollout.mask, epsilon, beta
        )
        if zero_grad:
            opt.zero_grad()
        (sign * loss).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
        opt.step()
        return loss.detach()

    return step


def grpo_step(student: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Advantages, loss with π_θold = π_θ detached, cleared gradients, backward, clip, step."""

    def trial(step: Callable) -> Callable:
        def run(seed: int, epsilon: float, beta: float, grad_clip: float) -> tuple:
            policy, opt, rollout, rewards, logp_ref = _step_inputs(seed)
            loss = step(policy, opt, rollout, rewards, logp_ref, epsilon, beta, grad_clip)
            weights = torch.cat([p.detach().flatten() for p in policy.parameters()])
            return torch.as_tensor(loss).detach().reshape(()), weights

        return run

    student_trial = trial(student)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    try:
        chosen = _verify_step(student_trial, trial)
    finally:
        torch.set_num_threads(threads)
    return student if chosen is student_trial else _library_step


def _verify_step(student_trial: Callable, trial: Callable[[Callable], Callable]) -> Callable:
    cases = [
        Case((0, 0.2, 0.04, 0.05), "a tiny model, gradient norm clipped to 0.05"),
        Case((1, 0.1, 0.5, 0.02), "a tiny model, ε=0.1, β=0.5, clipped to 0.02"),
        Case((2, 0.2, 0.04, 100.0), "a tiny model, a clip that does not bite"),
    ]
    return verify(
        "grpo_step",
        student_trial,
        trial(_library_step),
        cases,
        [
            Mistake(
                trial(_wrong_step(zero_grad=False)),
                "it does not clear the previous gradients: call opt.zero_grad() before "
                "loss.backward(), which adds to whatever .grad holds",
            ),
            Mistake(
                trial(_wrong_step(detach=False)),
                "π_θold must be a constant: pass logp.detach() as logp_old. With logp itself "
                "the ratio is exp(0) = 1 whatever θ is, and the advantages' gradient vanishes",
            ),
            Mistake(
                trial(_wrong_step(clip=False)),
                "it does not clip the gradient norm: call "
                "torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip) between "
                "backward() and step()",
            ),
            Mistake(
                trial(_wrong_step(sign=-1.0)),
                "it climbs the loss: grpo_loss returns -J, which the optimiser minimises as it is",
            ),
            Mistake(
                trial(_wrong_step(advantages=lambda r: r.flatten())),
                "it uses the rewards as advantages; GRPO's are group_advantages(rewards)",
            ),
            Mistake(
                trial(_wrong_step(advantages=lambda r: grpo.group_advantages(r).T.flatten())),
                "the advantages are in the wrong order: output g of question b is row b G + g, "
                "so flatten the (B, G) advantages row by row (.flatten(), not .T.flatten())",
            ),
        ],
        stand_in="grpo.grpo_step",
    )
