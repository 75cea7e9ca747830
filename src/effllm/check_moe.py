"""Lab 2's checks: V3's parameter count, top-k routing with a selection-only bias, the MoE
forward as a loop over experts, the bias update, the auxiliary balance loss, and a build
exercise (DeepSeek-V3's group-limited routing, which :mod:`effllm.moe` does not implement).

Each function takes the student's function, checks it against the library with
:func:`effllm.checks.verify` on small seeded inputs, and returns the function the lab goes on
with. Expert weights are stacked as :class:`effllm.moe.MoE` stacks them, shared experts first:
``w13`` (N_s + N_r, d_model, 2 d_expert) holds ``[w1 | w3]``, ``w2`` (N_s + N_r, d_expert,
d_model); an expert computes ``(silu(x w1) * (x w3)) w2``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from effllm import deepseek_v3 as v3
from effllm import moe
from effllm.checks import Case, Mistake, verify

# --- V3's parameter count -----------------------------------------------------------------------


def _v3_configs(seed: int) -> list[Case]:
    """V3's configuration and random ones of its form (every part of a different size)."""
    g = torch.Generator().manual_seed(seed)

    def pick(*options: int) -> int:
        return options[int(torch.randint(len(options), (1,), generator=g))]

    cases = [Case((v3.CONFIG,), "DeepSeek-V3's configuration")]
    for i in range(5):
        n_routed = pick(16, 64, 160, 256)
        c = dataclasses.replace(
            v3.CONFIG,
            vocab_size=pick(32_000, 102_400, 129_280),
            dim=pick(1024, 2048, 5120),
            inter_dim=pick(4096, 10_944, 12_288),
            moe_inter_dim=pick(512, 1408, 1536),
            n_layers=pick(12, 27, 60),
            n_dense_layers=pick(1, 2, 3),
            n_heads=pick(16, 32, 128),
            n_routed_experts=n_routed,
            n_shared_experts=pick(1, 2),
            n_activated_experts=pick(2, 6, 8),
            q_lora_rank=pick(768, 1536),
            kv_lora_rank=pick(256, 512),
            qk_rope_head_dim=pick(32, 64),
            v_head_dim=pick(64, 128),
        )
        cases.append(Case((c,), f"random configuration {i + 1}"))
    return cases


def _v3_parts(c: v3.V3Config) -> dict[str, float]:
    """Parameters of the parts the mistakes below get wrong."""
    expert = 3 * c.dim * c.moe_inter_dim
    n_moe = c.n_layers - c.n_dense_layers
    return {
        "shared_experts": n_moe * c.n_shared_experts * expert,
        "router": n_moe * c.n_routed_experts * c.dim,
        "embedding": c.vocab_size * c.dim,
        "routed": n_moe * c.n_routed_experts * expert,
    }


def _v3_minus(part: str) -> Callable[[v3.V3Config], tuple[float, float]]:
    def wrong(c: v3.V3Config) -> tuple[float, float]:
        total, active = v3.param_counts(c)
        p = _v3_parts(c)[part]
        return total - p, active - p

    return wrong


def v3_params(
    student: Callable[[v3.V3Config], tuple[float, float]],
) -> Callable[[v3.V3Config], tuple[float, float]]:
    """(total, active) parameters of V3's main model from its configuration."""
    return verify(
        "v3_params",
        student,
        v3.param_counts,
        _v3_configs(0),
        [
            Mistake(
                lambda c: (v3.param_counts(c)[0],) * 2,
                "its active count includes every routed expert: a token uses only "
                "n_activated_experts (K_r) of the n_routed_experts (N_r) routed experts per layer",
            ),
            Mistake(
                _v3_minus("shared_experts"),
                "it forgets the shared expert(s): every MoE layer also has n_shared_experts "
                "experts of 3 d moe_inter_dim parameters, which every token uses",
            ),
            Mistake(
                _v3_minus("embedding"),
                "it counts the embedding once: V3 does not tie its input embedding and output "
                "head, so there are 2 vocab_size d of them",
            ),
            Mistake(
                _v3_minus("router"),
                "it forgets the router: every MoE layer has a vector e_i of d numbers for each "
                "routed expert, n_routed_experts d parameters that every token uses",
            ),
            Mistake(
                lambda c: (
                    v3.param_counts(c)[0] - _v3_parts(c)["routed"],
                    v3.param_counts(c)[1]
                    - _v3_parts(c)["routed"] * c.n_activated_experts / c.n_routed_experts,
                ),
                "it leaves out the routed experts: n_routed_experts experts of 3 d "
                "moe_inter_dim parameters in each of the n_layers - n_dense_layers MoE layers",
            ),
        ],
        stand_in="deepseek_v3.param_counts",
    )


def _dense(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> Callable[..., torch.Tensor]:
    """A router's (weights, experts) as one (tokens, N_r) matrix: g_{i,t} where expert i is
    chosen, 0 elsewhere. A wrong expert or a wrong weight shows in it; the order does not."""

    def gates(u: torch.Tensor, e: torch.Tensor, *rest) -> torch.Tensor:
        weights, chosen = fn(u, e, *rest)
        return torch.zeros(u.shape[0], e.shape[0], dtype=weights.dtype).scatter(
            1, chosen.long(), weights
        )

    return gates


def _verify_router(
    name: str,
    student: Callable,
    reference: Callable,
    cases: list[Case],
    mistakes: list[Mistake],
    stand_in: str,
) -> Callable:
    """verify() on the routers' gate matrices; returns the student's or the reference router."""
    mine = _dense(student)
    dense_mistakes = [Mistake(_dense(m.function), m.message) for m in mistakes]
    kept = verify(name, mine, _dense(reference), cases, dense_mistakes, stand_in=stand_in)
    return student if kept is mine else reference


# --- top-k routing ------------------------------------------------------------------------------


def _gate(
    e: torch.Tensor, b: torch.Tensor, k: int, router: str, route_scale: float, **extra
) -> moe.Gate:
    cfg = moe.MoEConfig(
        n_routed=e.shape[0], n_shared=0, top_k=k, router=router, route_scale=route_scale, **extra
    )
    with torch.random.fork_rng(devices=[]):  # leave the lab's random numbers as they were
        gate = moe.Gate(e.shape[1], cfg)
    with torch.no_grad():
        gate.weight.copy_(e)
        gate.bias.copy_(b)
    return gate


@torch.no_grad()
def _library_route(
    u: torch.Tensor, e: torch.Tensor, b: torch.Tensor, k: int, router: str, route_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """effllm.moe.Gate on u, with centroids e and bias b: (weights, experts)."""
    _, weights, indices = _gate(e, b, k, router, route_scale)(u)
    return weights, indices


def _route_cases(seed: int) -> list[Case]:
    """Both routers, a bias large enough to change choices, route scales of 1 and more."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for i, (router, n, k, scale) in enumerate(
        [
            ("sigmoid", 6, 2, 1.0),
            ("sigmoid", 8, 3, 2.5),
            ("softmax", 6, 2, 1.0),
            ("softmax", 8, 1, 1.0),
            ("sigmoid", 16, 4, 4.0),
            ("softmax", 16, 2, 2.0),
        ]
    ):
        d = 12
        u = torch.randn(20, d, generator=g)
        e = torch.randn(n, d, generator=g) * d**-0.5
        b = torch.randn(n, generator=g) * (0.5 if router == "sigmoid" else 0.2)
        label = f"case {i + 1} ({router} router, N_r={n}, k={k}, route_scale={scale})"
        cases.append(Case((u, e, b, k, router, scale), label))
    return cases


def _route_with(
    select_with_bias: bool = True,
    weights_with_bias: bool = False,
    normalise: str = "sigmoid",
    scale: bool = True,
) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """A router with one of its parts changed, for the mistakes below."""

    def route(u, e, b, k, router, route_scale):
        logits = u @ e.T
        s = torch.sigmoid(logits) if router == "sigmoid" else torch.softmax(logits, dim=-1)
        chosen = torch.topk(s + b if select_with_bias else s, k, dim=-1).indices
        g = (s + b if weights_with_bias else s).gather(-1, chosen)
        if normalise in (router, "both"):
            g = g / g.sum(dim=-1, keepdim=True)
        return g * route_scale if scale else g, chosen

    return route


def route(student: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> Callable:
    """Top-k routing: (weights (tokens, k), experts (tokens, k)) as effllm.moe.Gate gives them."""
    return _verify_router(
        "route",
        student,
        _library_route,
        _route_cases(1),
        [
            Mistake(
                _route_with(weights_with_bias=True),
                "your weights use the biased scores s + b; the bias should only choose the "
                "experts, the weights come from the scores s without it",
            ),
            Mistake(
                _route_with(normalise="none"),
                "with the sigmoid router the weights are not normalised: divide the chosen "
                "scores by their sum, so that they add up to 1 (before the route scale)",
            ),
            Mistake(
                _route_with(normalise="both"),
                "it normalises the softmax router's weights over the chosen experts; the softmax "
                "router weighs them by their probabilities as they are (only the sigmoid "
                "router's weights are normalised)",
            ),
            Mistake(
                _route_with(select_with_bias=False),
                "it chooses the top k on the scores s alone, ignoring the bias; the experts are "
                "the top k of s + b",
            ),
            Mistake(
                _route_with(scale=False),
                "it leaves out route_scale: multiply the weights by it (V3 uses 2.5)",
            ),
        ],
        stand_in="moe.Gate",
    )


# --- the MoE forward as a loop over experts -----------------------------------------------------


def _swiglu(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    w1, w3 = w13.chunk(2, dim=-1)
    return (F.silu(x @ w1) * (x @ w3)) @ w2


def _library_experts(x, g, chosen, w13, w2, n_shared) -> torch.Tensor:
    """effllm.moe.run_experts, the fast layer's expert part, without its counts."""
    with torch.no_grad():
        return moe.run_experts(x, g, chosen, w13, w2, n_shared)[0]


def _experts_with(
    shared: bool = True, gated: bool = True, every_expert: bool = False, shared_last: bool = False
) -> Callable[..., torch.Tensor]:
    """The loop with one part changed, for the mistakes below."""

    def forward(x, g, chosen, w13, w2, n_shared):
        n_experts = w13.shape[0]
        routed_ids = range(n_experts - n_shared) if shared_last else range(n_shared, n_experts)
        shared_ids = range(n_experts - n_shared, n_experts) if shared_last else range(n_shared)
        y = torch.zeros_like(x)
        for i, e in enumerate(routed_ids):
            if every_expert:
                y += _swiglu(x, w13[e], w2[e])
                continue
            t, j = torch.where(chosen == i)
            out = _swiglu(x[t], w13[e], w2[e])
            y[t] += out * g[t, j, None] if gated else out
        if shared:
            for e in shared_ids:
                y += _swiglu(x, w13[e], w2[e])
        return y

    return forward


def _swapped_halves(x, g, chosen, w13, w2, n_shared):
    return _experts_with()(x, g, chosen, w13.roll(w13.shape[-1] // 2, dims=-1), w2, n_shared)


def _experts_cases(seed: int) -> list[Case]:
    """Gate outputs of real routers, with and without shared experts, some experts unused."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for i, (T, d, n_r, k, n_s, h, scale) in enumerate(
        [
            (12, 8, 4, 2, 1, 6, 1.0),
            (20, 16, 8, 3, 2, 4, 2.5),
            (9, 8, 6, 1, 0, 8, 1.0),
            (3, 8, 8, 2, 1, 4, 2.0),  # 3 tokens, 8 experts: some get none
        ]
    ):
        x = torch.randn(T, d, generator=g)
        e = torch.randn(n_r, d, generator=g) * d**-0.5
        weights, chosen = _library_route(x, e, torch.zeros(n_r), k, "sigmoid", scale)
        w13 = torch.randn(n_s + n_r, d, 2 * h, generator=g) * d**-0.5
        w2 = torch.randn(n_s + n_r, h, d, generator=g) * h**-0.5
        label = f"case {i + 1} ({T} tokens, N_s={n_s}, N_r={n_r}, K_r={k})"
        cases.append(Case((x, weights, chosen, w13, w2, n_s), label))
    return cases


def moe_forward(student: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The MoE forward as a loop over experts, against the fast layer's grouped experts."""
    return verify(
        "moe_forward",
        student,
        _library_experts,
        _experts_cases(2),
        [
            Mistake(
                _experts_with(shared=False),
                "it forgets the shared experts: every token also goes through the first "
                "n_shared experts (w13[:n_shared], w2[:n_shared]), with weight 1",
            ),
            Mistake(
                _experts_with(gated=False),
                "it adds the chosen experts' outputs without weighting them: multiply expert "
                "i's output for token t by its gate weight g_{i,t}",
            ),
            Mistake(
                _experts_with(every_expert=True),
                "it runs every routed expert on every token; a token goes only through the "
                "K_r experts its row of `chosen` names",
            ),
            Mistake(
                _experts_with(shared_last=True),
                "it takes the shared experts from the end of the stack; they come first: "
                "w13[:n_shared] are shared, routed expert i is w13[n_shared + i]",
            ),
            Mistake(
                _swapped_halves,
                "it puts silu on the wrong half: w13[e] is [w1 | w3], and the expert computes "
                "(silu(x w1) * (x w3)) w2, with w1 the first d_expert columns",
            ),
        ],
        stand_in="moe.run_experts (the fast layer's experts)",
    )


# --- the bias update ----------------------------------------------------------------------------


def _library_bias_update(b: torch.Tensor, counts: torch.Tensor, gamma: float) -> torch.Tensor:
    """One balance_step of an MoE layer with ``bias`` balancing, from b and the counts."""
    cfg = moe.MoEConfig(
        n_routed=b.numel(), n_shared=0, top_k=1, d_expert=1, bias_update_speed=gamma
    )
    with torch.random.fork_rng(devices=[]):  # leave the lab's random numbers as they were
        layer = moe.MoE(1, cfg)
    layer.gate.bias.copy_(b)
    layer.counts = counts
    moe.balance_step(layer)
    return layer.gate.bias.clone()


def _bias_cases(seed: int) -> list[Case]:
    """Random loads (some experts exactly at the mean), an even load, one expert taking all."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for i, (n, gamma) in enumerate([(8, 0.001), (16, 0.005), (31, 0.01), (6, 0.02)]):
        counts = torch.randint(0, 60, (n,), generator=g)
        b = torch.randn(n, generator=g) * 0.05
        cases.append(Case((b, counts, gamma), f"random loads {i + 1} (gamma={gamma})"))
    b = torch.randn(6, generator=g) * 0.05
    cases += [
        Case((b, torch.tensor([2, 4, 6, 4, 3, 5]), 0.01), "loads with experts at the mean"),
        Case((b, torch.full((6,), 7), 0.01), "an even load"),
        Case((b, torch.tensor([0, 0, 30, 0, 0, 0]), 0.01), "one expert taking every token"),
    ]
    return cases


def bias_update(
    student: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """b_i - gamma sign(load_i - mean load), as effllm.moe.balance_step updates the bias."""

    def load(counts: torch.Tensor) -> torch.Tensor:
        return counts.float()

    return verify(
        "bias_update",
        student,
        _library_bias_update,
        _bias_cases(3),
        [
            Mistake(
                lambda b, c, gm: b + gm * torch.sign(load(c) - load(c).mean()),
                "the sign is flipped: an overloaded expert (load above the mean) must become "
                "less attractive, so its bias goes down: b_i - gamma sign(load_i - mean)",
            ),
            Mistake(
                lambda b, c, gm: b - gm * (load(c) - load(c).mean()),
                "it moves the bias in proportion to the excess load; V3's rule moves it by a "
                "fixed step gamma, up or down: use the sign of load_i - mean",
            ),
            Mistake(
                lambda b, c, gm: b - gm * (load(c) - load(c).mean()) / load(c).sum(),
                "it moves the bias in proportion to the excess share of the load; V3's rule "
                "moves it by a fixed step gamma, up or down: use the sign of load_i - mean",
            ),
            Mistake(
                lambda b, c, gm: b - gm * torch.sign(load(c) - load(c).max()),
                "it compares each load with the largest one; compare it with the mean load",
            ),
            Mistake(
                lambda b, c, gm: b - torch.sign(load(c) - load(c).mean()),
                "it forgets the step: move each bias by gamma times the sign, not by 1",
            ),
        ],
        stand_in="moe.balance_step",
    )


# --- the auxiliary balance loss -----------------------------------------------------------------


def _library_balance_loss(
    s: torch.Tensor, counts: torch.Tensor, k: int, alpha: float
) -> torch.Tensor:
    cfg = moe.MoEConfig(n_routed=s.shape[1], n_shared=0, top_k=k, aux_loss_alpha=alpha)
    return moe.balance_loss(s, counts, cfg)


def _loss_cases(seed: int) -> list[Case]:
    """Sigmoid scores (not normalised) and softmax scores, with the counts their top-k give."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for i, (T, n, k, alpha, router) in enumerate(
        [
            (40, 8, 2, 0.01, "sigmoid"),
            (64, 16, 4, 0.1, "sigmoid"),
            (30, 6, 1, 0.003, "softmax"),
            (50, 31, 3, 0.02, "sigmoid"),
        ]
    ):
        logits = torch.randn(T, n, generator=g) + torch.linspace(-1, 1, n)  # a skewed load
        s = torch.sigmoid(logits) if router == "sigmoid" else torch.softmax(logits, dim=-1)
        counts = torch.bincount(s.topk(k, dim=-1).indices.flatten(), minlength=n)
        label = f"case {i + 1} ({router} scores, {T} tokens, N_r={n}, K_r={k}, alpha={alpha})"
        cases.append(Case((s, counts, k, alpha), label))
    return cases


def _loss_with(f_scale: str = "N_r/(K_r T)", normalise: bool = True, alpha: bool = True):
    def loss(s, counts, k, a):
        T, n = s.shape
        scale = {"N_r/(K_r T)": n / (k * T), "1/T": 1 / T, "1/(K_r T)": 1 / (k * T), "1": 1.0}
        f = counts.float() * scale[f_scale]
        P = (s / s.sum(dim=-1, keepdim=True) if normalise else s).mean(dim=0)
        return (a if alpha else 1.0) * (f * P).sum()

    return loss


def balance_loss(
    student: Callable[[torch.Tensor, torch.Tensor, int, float], torch.Tensor],
) -> Callable[[torch.Tensor, torch.Tensor, int, float], torch.Tensor]:
    """alpha sum_i f_i P_i, as effllm.moe.balance_loss computes it."""
    scaling = (
        "f_i is not scaled by N_r / K_r: f_i = N_r / (K_r T) count_i, so that it is 1 for every "
        "expert when the load is even"
    )
    return verify(
        "balance_loss",
        student,
        _library_balance_loss,
        _loss_cases(4),
        [
            Mistake(_loss_with(f_scale="1/T"), scaling),
            Mistake(_loss_with(f_scale="1/(K_r T)"), scaling),
            Mistake(_loss_with(f_scale="1"), scaling),
            Mistake(
                _loss_with(normalise=False),
                "P_i uses the scores as they are; normalise each token's scores to sum to 1 "
                "first (s_{i,t} / sum_j s_{j,t}), then average over the tokens",
            ),
            Mistake(_loss_with(alpha=False), "it forgets the weight alpha: alpha sum_i f_i P_i"),
        ],
        stand_in="moe.balance_loss",
    )


# --- build exercise: group-limited routing ------------------------------------------------------


@torch.no_grad()
def limited_route(
    u: torch.Tensor,
    e: torch.Tensor,
    b: torch.Tensor,
    k: int,
    n_groups: int,
    top_groups: int,
    group_score: str = "top2",
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3's group-limited routing, with a sigmoid router; returns (weights, experts).

    u: (tokens, d_model), e: (N_r, d_model), b: (N_r,). The N_r experts form ``n_groups``
    groups of consecutive experts. A group's score is the sum of the two highest biased scores
    s_{i,t} + b_i in it (V3's rule when the gate has a bias); each token keeps its
    ``top_groups`` best groups and takes the top k of s + b among their experts. The weights
    are the unbiased scores of the chosen experts, normalised to sum to 1: (tokens, k) each.
    ``group_score`` ("max", "sum") and the unbiased variant exist for the checks' mistakes.
    """
    s = torch.sigmoid(u @ e.T)
    biased = s + b
    ranked = s if group_score == "top2, unbiased" else biased
    grouped = ranked.view(u.shape[0], n_groups, -1)
    if group_score == "max":
        per_group = grouped.amax(dim=-1)
    elif group_score == "sum":
        per_group = grouped.sum(dim=-1)
    else:
        per_group = grouped.topk(2, dim=-1).values.sum(dim=-1)
    kept = per_group.topk(top_groups, dim=-1).indices
    masked = torch.ones_like(per_group, dtype=torch.bool).scatter(1, kept, False)
    allowed = biased.view_as(grouped).masked_fill(masked[..., None], float("-inf")).flatten(1)
    chosen = allowed.topk(k, dim=-1).indices
    g = s.gather(1, chosen)
    return g / g.sum(dim=-1, keepdim=True), chosen


def _limited_cases(seed: int) -> list[Case]:
    """Groups that matter (fewer kept than there are), and the edge cases where they do not."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, k, n_groups, top_groups in [
        (16, 4, 4, 2),
        (32, 6, 8, 3),
        (24, 3, 6, 1),
        (64, 8, 8, 4),
        (16, 4, 1, 1),  # one group: plain top-k
        (12, 2, 4, 4),  # every group kept: plain top-k
    ]:
        d = 12
        u = torch.randn(24, d, generator=g)
        e = torch.randn(n, d, generator=g) * d**-0.5
        b = torch.randn(n, generator=g) * 0.3
        label = f"N_r={n}, k={k}, {n_groups} groups, {top_groups} kept"
        cases.append(Case((u, e, b, k, n_groups, top_groups), label))
    return cases


def group_route(student: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> Callable:
    """Group-limited routing as DeepSeek-V3's reference Gate does it."""

    def variant(group_score: str) -> Callable:
        return lambda u, e, b, k, n, m: limited_route(u, e, b, k, n, m, group_score)

    return _verify_router(
        "group_route",
        student,
        limited_route,
        _limited_cases(5),
        [
            Mistake(
                lambda u, e, b, k, n, m: _library_route(u, e, b, k, "sigmoid", 1.0),
                "it takes the top k over all experts; first keep each token's top_groups best "
                "groups, then choose the k experts among theirs only",
            ),
            Mistake(
                variant("max"),
                "it scores a group by its best expert; V3 (with a bias) scores it by the sum of "
                "its two best biased scores",
            ),
            Mistake(
                variant("sum"),
                "it scores a group by the sum of all its experts' scores; V3 sums only the two "
                "best biased scores of each group",
            ),
            Mistake(
                variant("top2, unbiased"),
                "it scores the groups without the bias; V3 sums the two best biased scores "
                "s + b of each group (the bias steers the choice of groups too)",
            ),
        ],
        stand_in="check_moe.limited_route (the library has no group-limited routing)",
    )
