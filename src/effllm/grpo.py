r"""Group Relative Policy Optimization (GRPO), as defined in DeepSeekMath §4.1 and used for R1.

For each question q, sample a group of G outputs o_1..o_G from the old policy π_θold, score
them with a reward r_i, and maximise

    J(θ) = 1/G Σ_i 1/|o_i| Σ_t { min[ ρ_{i,t} Â_{i,t}, clip(ρ_{i,t}, 1-ε, 1+ε) Â_{i,t} ]
                                 - β D_KL[π_θ || π_ref] }

    ρ_{i,t} = π_θ(o_{i,t} | q, o_{i,<t}) / π_θold(o_{i,t} | q, o_{i,<t})
    Â_{i,t} = (r_i - mean(r)) / std(r)                  (outcome supervision: same for all t)
    D_KL    = π_ref/π_θ - log(π_ref/π_θ) - 1            (per token; unbiased, never negative)

The group mean replaces PPO's learned value function as the baseline: an answer is pushed
up if it beat its siblings, down if it did worse. Two later papers change the loss: Dr. GRPO
(Liu et al. 2025, arXiv 2503.20783) drops both the division by std(r) and the 1/|o_i|, and
DAPO (Yu et al. 2025, arXiv 2503.14476) averages over all tokens of the batch instead of
within each output; see :func:`grpo_loss`'s ``aggregation``. Functions below map one-to-one
onto those lines:
:func:`group_advantages`, :func:`kl_estimator`, :func:`grpo_loss`; :func:`grpo_step` is one
gradient step on them, and :func:`train_grpo` the outer loop (sample, score, μ gradient steps
per batch of samples).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from effllm.rl_tasks import (
    ACCURACY_REWARD,
    FORMAT_REWARD,
    AdditionTask,
    Problem,
    is_correct,
    is_well_formed,
    reward,
)
from effllm.sampling import Rollout, sample_group

ADVANTAGES = ("grpo", "grpo_no_std", "reinforce")
LOSS_AGGREGATIONS = ("sequence", "token", "constant")


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Â_i = (r_i - mean(r)) / (std(r) + eps) within each group; rewards: (B, G) -> (B, G).

    A group whose rewards are all equal carries no signal and gets advantage exactly 0
    everywhere (in floating point, r_i - mean(r) can otherwise be a rounding error, which the
    division by a near-zero std would blow up). ``scale=False`` keeps only the mean
    subtraction: that is the advantage half of Dr. GRPO, which also drops the 1/|o_i| of the
    loss (``aggregation="constant"`` in :func:`grpo_loss`).
    """
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (batch, G) with G >= 2, got {tuple(rewards.shape)}")
    all_equal = (rewards == rewards[:, :1]).all(dim=1, keepdim=True)
    centred = (rewards - rewards.mean(dim=1, keepdim=True)).masked_fill(all_equal, 0.0)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def reinforce_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Plain REINFORCE: Â_i = r_i, no baseline at all; rewards: (B, G) -> (B, G).

    A constant c added to every reward then adds c Σ_t ∇log π(o_{i,t}) to each output's
    term. With a per-output sum of token terms (``aggregation="constant"``) that has expected
    value 0, since E[∇log π(o)] = 0: the offset costs only variance. With the paper's 1/|o_i|
    (``aggregation="sequence"``) it adds c ∇E[1/|o|], a push towards short outputs; with
    DAPO's token average a similar, batch-dependent one. A baseline removes both.
    """
    return rewards.clone()


def advantages(rewards: torch.Tensor, kind: str) -> torch.Tensor:
    """Advantages of ``kind`` (one of ``ADVANTAGES``) for rewards: (B, G) -> (B, G).

    ``"grpo"``: group mean subtracted, divided by the group std (DeepSeekMath).
    ``"grpo_no_std"``: group mean subtracted only, the advantage half of Dr. GRPO.
    ``"reinforce"``: the reward itself, no baseline.
    """
    if kind == "grpo":
        return group_advantages(rewards)
    if kind == "grpo_no_std":
        return group_advantages(rewards, scale=False)
    if kind == "reinforce":
        return reinforce_advantages(rewards)
    raise ValueError(f"unknown advantage kind {kind!r}; choose one of {ADVANTAGES}")


def kl_estimator(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of D_KL[π_θ || π_ref]: π_ref/π_θ - log(π_ref/π_θ) - 1.

    logp, logp_ref: log-probabilities of the sampled tokens under π_θ and π_ref, any shape.
    Since x - log x - 1 >= 0 for x > 0, every term is non-negative, and it is 0 exactly where
    the two policies agree. Its mean over tokens sampled from π_θ is unbiased for the KL.
    """
    log_ratio = logp_ref - logp
    return torch.exp(log_ratio) - log_ratio - 1


def grpo_loss(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    logp_ref: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float = 0.2,
    beta: float = 0.04,
    aggregation: str = "sequence",
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative GRPO objective (to minimise) and diagnostics.

    logp, logp_old, logp_ref: (N, T) log π(o_{i,t} | q, o_{i,<t}) under π_θ, π_θold and π_ref
        for the N = B x G sampled outputs; only logp carries gradients.
    adv: (N,) Â_i, one number per output. mask: (N, T), 1 on the tokens of o_i.
    aggregation: how the token terms are summed up, one of ``LOSS_AGGREGATIONS``:

        - ``"sequence"``: 1/N Σ_i 1/|o_i| Σ_t, each output's tokens averaged, then the outputs
          (GRPO as DeepSeekMath writes it, eq. 3). Every output counts equally however long
          it is; the 1/|o_i| makes the gradient favour short outputs where Â > 0 and long ones
          where Â < 0, which Dr. GRPO calls a length bias.
        - ``"token"``: 1/Σ_i|o_i| Σ_i Σ_t, one average over all tokens of the batch (DAPO's
          token-level loss, Yu et al. 2025): every token counts equally, so long outputs
          weigh more. The normaliser still depends on the sampled lengths.
        - ``"constant"``: 1/(N L) Σ_i Σ_t with L = ``max_tokens``, the generation budget: a
          per-output sum of token terms, scaled by a constant that does not depend on what
          was sampled (Dr. GRPO, Liu et al. 2025, which divides by the budget in place of
          |o_i|). The only aggregation without a length bias.
    max_tokens: L for ``"constant"`` (required there, unused otherwise).
    """
    if aggregation not in LOSS_AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {LOSS_AGGREGATIONS}")
    if aggregation == "constant" and (max_tokens is None or max_tokens < mask.shape[1]):
        raise ValueError(
            f"aggregation 'constant' needs max_tokens >= {mask.shape[1]} (the generation "
            f"budget), got {max_tokens}"
        )
    mask = mask.to(logp.dtype)
    A = adv[:, None]  # Â_{i,t} = Â_i for every token t of output i
    ratio = torch.exp(logp - logp_old)  # π_θ / π_θold
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
    surrogate = torch.min(ratio * A, clipped * A)  # min[ρ Â, clip(ρ, 1-ε, 1+ε) Â]
    kl = kl_estimator(logp, logp_ref)  # D_KL[π_θ || π_ref], per token
    per_token = surrogate - beta * kl  # the braces { ... } of the objective
    if aggregation == "sequence":
        lengths = mask.sum(dim=1).clamp(min=1)
        objective = ((per_token * mask).sum(dim=1) / lengths).mean()  # 1/G Σ_i 1/|o_i| Σ_t
    elif aggregation == "token":
        objective = (per_token * mask).sum() / mask.sum().clamp(min=1)  # 1/Σ|o_i| Σ_i Σ_t
    else:
        objective = (per_token * mask).sum(dim=1).mean() / max_tokens  # 1/(G L) Σ_i Σ_t
    n_tokens = mask.sum().clamp(min=1)
    stats = {
        "kl": ((kl * mask).sum() / n_tokens).item(),
        "clip_frac": ((clipped != ratio).to(mask.dtype) * mask).sum().div(n_tokens).item(),
    }
    return -objective, stats


def completion_logprobs(
    model: nn.Module, rollout: Rollout, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """log π(o_{i,t} | q, o_{i,<t}) of every sampled token: (N, T); 0 where mask is 0.

    One forward pass over prompt + completion. Logits are divided by the sampling temperature
    and, with ``top_k``, all but the k largest are masked out, exactly as
    :func:`effllm.model.sample_next` does, so that the probabilities are those of the
    distribution the tokens were drawn from. A token outside the top k gets log π = -inf.
    """
    logits, _ = model(rollout.tokens[:, :-1])
    logits = logits[:, rollout.prompt_len - 1 :].float() / temperature  # predicts completions
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    logp = logp.gather(-1, rollout.completions.unsqueeze(-1)).squeeze(-1)
    return torch.where(rollout.mask, logp, torch.zeros_like(logp))


def grpo_step(
    policy: nn.Module,
    opt: torch.optim.Optimizer,
    rollout: Rollout,
    adv: torch.Tensor,
    logp_ref: torch.Tensor,
    logp_old: torch.Tensor | None = None,
    epsilon: float = 0.2,
    beta: float = 0.04,
    aggregation: str = "sequence",
    max_tokens: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    grad_clip: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """One gradient step of ``policy`` on -J(θ) for the samples of ``rollout``.

    adv: (N,) the advantages; logp_ref: (N, T) log π_ref of the sampled tokens; logp_old:
    (N, T) log π_θold, or None on the first step on these samples, where θ is still θold and
    the policy's own log-probabilities (detached) are used. The gradient norm is clipped to
    ``grad_clip`` (0 or None: no clipping). Returns the loss before the step (detached), its
    diagnostics, and logp_old for the next of the μ steps on the same samples.
    """
    logp = completion_logprobs(policy, rollout, temperature, top_k)
    if logp_old is None:
        logp_old = logp.detach()
    loss, stats = grpo_loss(
        logp, logp_old, logp_ref, adv, rollout.mask, epsilon, beta, aggregation, max_tokens
    )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    opt.step()
    return loss.detach(), stats, logp_old


@dataclass
class GRPOConfig:
    """One RL run. Names follow DeepSeekMath: G, ε (epsilon), β (beta), μ (mu)."""

    steps: int = 100
    prompts_per_step: int = 16
    G: int = 8
    lr: float = 1e-4
    epsilon: float = 0.2
    beta: float = 0.04
    mu: int = 1  # gradient steps on each batch of samples (π_θold is refreshed after them)
    temperature: float = 1.0
    # Sample from the k most likely tokens only; π_θ and π_θold are then scored with the same
    # truncation, π_ref without it (so the KL stays finite). Needs mu = 1: after a first update
    # a sampled token can leave π_θ's top k, where the truncated policy gives it probability 0.
    top_k: int | None = None
    advantage: str = "grpo"
    # The grader's weights (R1-Zero's two rule-based rewards; see effllm.rl_tasks.reward).
    format_reward: float = FORMAT_REWARD
    accuracy_reward: float = ACCURACY_REWARD
    # Added to every reward before the advantages: it moves the reward's zero point, which a
    # group baseline cancels exactly. Plain REINFORCE keeps it, at the price of variance with
    # aggregation="constant" and of a push towards short outputs with "sequence" or "token".
    reward_offset: float = 0.0
    aggregation: str = "sequence"
    grad_clip: float = 1.0
    eval_every: int = 10
    eval_problems: int = 200
    eval_samples: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.G < 2:
            raise ValueError(f"G must be >= 2 (a group needs siblings), got {self.G}")
        if self.steps < 1 or self.prompts_per_step < 1 or self.mu < 1:
            raise ValueError(
                f"steps={self.steps}, prompts_per_step={self.prompts_per_step} and "
                f"mu={self.mu} must be >= 1"
            )
        if self.temperature <= 0:
            raise ValueError(f"sampling temperature must be > 0, got {self.temperature}")
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"unknown advantage {self.advantage!r}; choose one of {ADVANTAGES}")
        if self.aggregation not in LOSS_AGGREGATIONS:
            raise ValueError(
                f"unknown aggregation {self.aggregation!r}; choose one of {LOSS_AGGREGATIONS}"
            )
        if self.top_k is not None and (self.top_k < 1 or self.mu != 1):
            raise ValueError(f"top_k={self.top_k} needs top_k >= 1 and mu = 1, got mu={self.mu}")


@torch.no_grad()
def heldout_accuracy(
    model: nn.Module,
    task: AdditionTask,
    problems: list[Problem],
    samples: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
) -> float:
    """pass@1 on ``problems``: the share of correct answers among ``samples`` per problem.

    This is how DeepSeek-R1 reports accuracy: sample k answers per question at a non-zero
    temperature and average their correctness. A fixed ``seed`` makes every evaluation draw the
    same random numbers, so two checkpoints are compared on equal terms. ``temperature=0`` with
    ``samples=1`` is greedy decoding.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    roll = sample_group(
        model,
        task.encode_prompts(problems).to(device),
        samples,
        task.max_completion_len,
        temperature,
        generator=generator,
    )
    _, correct, _ = score(roll, problems, samples)
    return correct.mean().item()


def score(
    rollout: Rollout,
    problems: list[Problem],
    G: int,
    format_reward: float = FORMAT_REWARD,
    accuracy_reward: float = ACCURACY_REWARD,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rewards, correctness and well-formedness of a rollout, each (B, G), from rl_tasks."""
    texts, finished = rollout.texts(), rollout.finished.tolist()
    answers = [p.answer for p in problems for _ in range(G)]
    graded = list(zip(texts, answers, finished, strict=True))
    r = [reward(t, a, f, format_reward, accuracy_reward) for t, a, f in graded]
    ok = [is_correct(t, a, f) for t, a, f in graded]
    formed = [is_well_formed(t, f) for t, _, f in graded]
    shape = (len(problems), G)
    return (
        torch.tensor(r).view(shape),
        torch.tensor(ok, dtype=torch.float32).view(shape),
        torch.tensor(formed, dtype=torch.float32).view(shape),
    )


def training_problems(task: AdditionTask, cfg: GRPOConfig, step: int) -> list[Problem]:
    """The ``cfg.prompts_per_step`` training problems that :func:`train_grpo` draws at ``step``
    (1 to ``cfg.steps``), a function of ``cfg.seed`` and the step alone."""
    return task.problems(cfg.prompts_per_step, "train", seed=cfg.seed * 1_000_003 + step)


def train_grpo(
    policy: nn.Module,
    task: AdditionTask,
    cfg: GRPOConfig,
    heldout: list[Problem] | None = None,
    desc: str = "GRPO",
) -> pd.DataFrame:
    """Fine-tune ``policy`` in place with GRPO (or a variant named by ``cfg.advantage``).

    The reference model π_ref is a frozen copy of the policy as it was on entry. Each step
    draws ``cfg.prompts_per_step`` training problems, samples G outputs for each, grades them,
    and takes ``cfg.mu`` AdamW steps on the loss.

    Returns one row per step (step 0 is the starting policy): ``step``, ``reward`` (mean of the
    grader's rewards, before ``cfg.reward_offset``),
    ``accuracy`` (share of correct samples), ``format_rate``, ``kl`` (mean per-token estimate
    against π_ref), ``length`` (mean completion tokens, EOS included), ``clip_frac``, ``loss``,
    ``elapsed_s`` (training seconds, evaluation excluded) and ``heldout_accuracy`` (pass@1 with
    ``cfg.eval_samples`` samples per problem at ``cfg.temperature``, every ``cfg.eval_every``
    steps and at the end; NaN elsewhere).
    """
    device = next(policy.parameters()).device
    if heldout is None:
        heldout = task.problems(cfg.eval_problems, "heldout", seed=cfg.seed)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)  # π_ref
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    rows = [
        {
            "step": 0,
            "heldout_accuracy": heldout_accuracy(
                policy, task, heldout, cfg.eval_samples, cfg.temperature
            ),
        }
    ]
    elapsed = 0.0
    bar = tqdm(range(1, cfg.steps + 1), desc=desc)
    for step in bar:
        t0 = time.perf_counter()
        problems = training_problems(task, cfg, step)
        prompts = task.encode_prompts(problems).to(device)
        rollout = sample_group(  # π_θold = the policy as it is now, before this step's updates
            policy, prompts, cfg.G, task.max_completion_len, cfg.temperature, cfg.top_k, generator
        )
        rewards, correct, formed = score(
            rollout, problems, cfg.G, cfg.format_reward, cfg.accuracy_reward
        )
        adv = advantages(rewards + cfg.reward_offset, cfg.advantage).flatten().to(device)
        with torch.no_grad():
            logp_ref = completion_logprobs(reference, rollout, cfg.temperature)
        logp_old = None  # the first inner step sets it: θ is still θold there
        for _ in range(cfg.mu):
            loss, stats, logp_old = grpo_step(
                policy,
                opt,
                rollout,
                adv,
                logp_ref,
                logp_old,
                cfg.epsilon,
                cfg.beta,
                cfg.aggregation,
                task.max_completion_len,
                cfg.temperature,
                cfg.top_k,
                cfg.grad_clip,
            )
        elapsed += time.perf_counter() - t0
        row = {
            "step": step,
            "reward": rewards.mean().item(),
            "accuracy": correct.mean().item(),
            "format_rate": formed.mean().item(),
            "length": rollout.lengths.float().mean().item(),
            "loss": loss.item(),
            **stats,
            "elapsed_s": elapsed,
        }
        if step % cfg.eval_every == 0 or step == cfg.steps:
            row["heldout_accuracy"] = heldout_accuracy(
                policy, task, heldout, cfg.eval_samples, cfg.temperature
            )
            bar.set_postfix(heldout=f"{row['heldout_accuracy']:.1%}", reward=f"{row['reward']:.2f}")
        rows.append(row)
    return pd.DataFrame(rows)
