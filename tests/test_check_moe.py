"""Lab 2's checks (effllm.check_moe): the right function passes, each known mistake is rejected
with its message, a result off by 1% (or one wrong expert index) is rejected."""

import pytest
import torch
import torch.nn.functional as F

from effllm import check_moe as lab2
from effllm.checks import CheckFailedError

# --- right answers, written as a student would ---------------------------------------------------


def v3_params(c, routed_active=None, shared=1, embeddings=2, router=1):
    d, h = c.dim, c.n_heads
    attn = (
        d * c.q_lora_rank
        + c.q_lora_rank * h * (c.qk_nope_head_dim + c.qk_rope_head_dim)
        + d * (c.kv_lora_rank + c.qk_rope_head_dim)
        + c.kv_lora_rank * h * (c.qk_nope_head_dim + c.v_head_dim)
        + h * c.v_head_dim * d
    )
    expert = 3 * d * c.moe_inter_dim
    n_moe = c.n_layers - c.n_dense_layers
    common = (
        c.n_layers * attn + c.n_dense_layers * 3 * d * c.inter_dim + embeddings * c.vocab_size * d
    )
    common += n_moe * (shared * c.n_shared_experts * expert + router * c.n_routed_experts * d)
    routed = n_moe * c.n_routed_experts * expert
    k = c.n_activated_experts if routed_active is None else routed_active(c)
    return common + routed, common + routed * k / c.n_routed_experts


def route(
    u, e, b, k, router, route_scale, bias_in_weights=False, normalise=None, bias=True, scale=True
):
    s = torch.sigmoid(u @ e.T) if router == "sigmoid" else torch.softmax(u @ e.T, dim=-1)
    chosen = torch.topk(s + b if bias else s, k, dim=-1).indices
    g = (s + b if bias_in_weights else s).gather(-1, chosen)
    if (router == "sigmoid") if normalise is None else normalise:
        g = g / g.sum(dim=-1, keepdim=True)
    return (g * route_scale if scale else g), chosen


def expert(x, w13, w2, swap=False):
    h = w2.shape[0]
    w1, w3 = (w13[:, h:], w13[:, :h]) if swap else (w13[:, :h], w13[:, h:])
    return (F.silu(x @ w1) * (x @ w3)) @ w2


def moe_forward(
    x, g, chosen, w13, w2, n_s, shared=True, gated=True, every=False, shared_last=False, swap=False
):
    n_r = w13.shape[0] - n_s
    first = 0 if shared_last else n_s
    y = torch.zeros_like(x)
    for i in range(n_r):
        if every:
            y = y + expert(x, w13[first + i], w2[first + i], swap)
            continue
        t, j = torch.where(chosen == i)
        out = expert(x[t], w13[first + i], w2[first + i], swap)
        y[t] += out * g[t, j, None] if gated else out
    if shared:
        start = n_r if shared_last else 0
        for i in range(start, start + n_s):
            y = y + expert(x, w13[i], w2[i], swap)
    return y


def bias_update(b, counts, gamma, sign=-1, rule="sign", against="mean", step=True):
    load = counts.float()
    ref = load.mean() if against == "mean" else load.max()
    move = torch.sign(load - ref) if rule == "sign" else load - ref
    return b + sign * (gamma if step else 1.0) * move


def balance_loss(s, counts, k, alpha, f_scale=None, normalise=True, weight=True):
    T, n = s.shape
    f = counts.float() * (n / (k * T) if f_scale is None else f_scale(n, k, T))
    P = (s / s.sum(dim=-1, keepdim=True) if normalise else s).mean(dim=0)
    return (alpha if weight else 1.0) * (f * P).sum()


def group_route(u, e, b, k, n_groups, top_groups, group_score="top2", bias_groups=True, limit=True):
    s = torch.sigmoid(u @ e.T)
    biased = s + b
    per = (biased if bias_groups else s).view(u.shape[0], n_groups, -1)
    if group_score == "top2":
        per = per.topk(2, dim=-1).values.sum(-1)
    elif group_score == "max":
        per = per.max(dim=-1).values
    else:
        per = per.sum(dim=-1)
    keep = torch.zeros_like(per, dtype=torch.bool).scatter(
        1, per.topk(top_groups, -1).indices, True
    )
    if not limit:
        keep[:] = True
    masked = biased.view(u.shape[0], n_groups, -1).masked_fill(~keep[..., None], -torch.inf)
    chosen = masked.flatten(1).topk(k, dim=-1).indices
    g = s.gather(1, chosen)
    return g / g.sum(-1, keepdim=True), chosen


# --- the table: check, right answer, mistakes with part of their message -------------------------

CASES = [
    (
        lab2.v3_params,
        v3_params,
        [
            (lambda c: v3_params(c, routed_active=lambda c: c.n_routed_experts), "includes every"),
            (lambda c: v3_params(c, shared=0), "forgets the shared expert"),
            (lambda c: v3_params(c, embeddings=1), "does not tie"),
            (lambda c: v3_params(c, router=0), "forgets the router"),
        ],
    ),
    (
        lab2.route,
        route,
        [
            (lambda *a: route(*a, bias_in_weights=True), "your weights use the biased scores"),
            (lambda *a: route(*a, normalise=False), "are not normalised"),
            (lambda *a: route(*a, normalise=True), "normalises the softmax router's weights"),
            (lambda *a: route(*a, bias=False), "ignoring the bias"),
            (lambda *a: route(*a, scale=False), "leaves out route_scale"),
        ],
    ),
    (
        lab2.moe_forward,
        moe_forward,
        [
            (lambda *a: moe_forward(*a, shared=False), "forgets the shared experts"),
            (lambda *a: moe_forward(*a, gated=False), "without weighting them"),
            (lambda *a: moe_forward(*a, every=True), "runs every routed expert on every token"),
            (lambda *a: moe_forward(*a, shared_last=True), "from the end of the stack"),
            (lambda *a: moe_forward(*a, swap=True), "silu on the wrong half"),
        ],
    ),
    (
        lab2.bias_update,
        bias_update,
        [
            (lambda *a: bias_update(*a, sign=1), "the sign is flipped"),
            (lambda *a: bias_update(*a, rule="proportional"), "in proportion to the excess"),
            (lambda *a: bias_update(*a, against="max"), "compares each load with the largest"),
            (lambda *a: bias_update(*a, step=False), "forgets the step"),
        ],
    ),
    (
        lab2.balance_loss,
        balance_loss,
        [
            (lambda *a: balance_loss(*a, f_scale=lambda n, k, T: 1 / T), "not scaled by N_r / K_r"),
            (
                lambda *a: balance_loss(*a, f_scale=lambda n, k, T: 1 / (k * T)),
                "not scaled by N_r / K_r",
            ),
            (lambda *a: balance_loss(*a, normalise=False), "P_i uses the scores as they are"),
            (lambda *a: balance_loss(*a, weight=False), "forgets the weight alpha"),
        ],
    ),
    (
        lab2.group_route,
        group_route,
        [
            (lambda *a: group_route(*a, limit=False), "top k over all experts"),
            (lambda *a: group_route(*a, group_score="max"), "by its best expert"),
            (lambda *a: group_route(*a, group_score="sum"), "sum of all its experts"),
            (lambda *a: group_route(*a, bias_groups=False), "groups without the bias"),
        ],
    ),
]
IDS = [check.__name__ for check, _, _ in CASES]


@pytest.mark.parametrize(("check", "right", "mistakes"), CASES, ids=IDS)
def test_the_right_function_passes_and_is_returned(check, right, mistakes, capsys):
    assert check(right) is right
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(("check", "right", "mistakes"), CASES, ids=IDS)
def test_each_mistake_is_rejected_with_its_message(check, right, mistakes):
    for wrong, message in mistakes:
        with pytest.raises(CheckFailedError, match=message):
            check(wrong)


def scaled(fn):
    def wrong(*args):
        out = fn(*args)
        if isinstance(out, tuple):
            return tuple(
                o * 1.01 if not isinstance(o, torch.Tensor) or o.is_floating_point() else o
                for o in out
            )
        return out * 1.01

    return wrong


def one_index_off(fn):
    def wrong(*args):
        g, chosen = fn(*args)
        chosen = chosen.clone()
        chosen[0, 0] = (chosen[0, 0] + 1) % args[1].shape[0]
        return g, chosen

    return wrong


@pytest.mark.parametrize(("check", "right", "mistakes"), CASES, ids=IDS)
def test_a_result_off_by_one_percent_fails(check, right, mistakes):
    with pytest.raises(CheckFailedError):
        check(scaled(right))


@pytest.mark.parametrize(("check", "right"), [(lab2.route, route), (lab2.group_route, group_route)])
def test_one_wrong_expert_index_fails(check, right):
    with pytest.raises(CheckFailedError, match="differ from the expected ones"):
        check(one_index_off(right))


def test_the_loop_matches_deepseek_style_reference_with_grads_off_and_library_layer():
    """The check's reference is the fast layer: MoE.forward equals the loop on its own gate."""
    torch.manual_seed(0)
    cfg = lab2.moe.MoEConfig(n_routed=6, n_shared=1, top_k=2, d_expert=4, route_scale=2.0)
    layer = lab2.moe.MoE(8, cfg)
    with torch.no_grad():
        layer.w13.normal_(0, 0.3)
        layer.w2.normal_(0, 0.3)
        x = torch.randn(2, 5, 8)
        _, g, chosen = layer.gate(x.view(-1, 8))
        loop = moe_forward(x.view(-1, 8), g, chosen, layer.w13, layer.w2, 1)
        assert torch.allclose(layer(x).view(-1, 8), loop, atol=1e-6)


def test_group_limited_routing_keeps_a_token_inside_its_groups():
    g = torch.Generator().manual_seed(0)
    u, e = torch.randn(50, 12, generator=g), torch.randn(32, 12, generator=g)
    _, chosen = lab2.limited_route(u, e, torch.zeros(32), 6, 8, 3)
    assert max(len(set((row // 4).tolist())) for row in chosen) <= 3
    _, plain = lab2.limited_route(u, e, torch.zeros(32), 6, 1, 1)
    assert torch.equal(plain, route(u, e, torch.zeros(32), 6, "sigmoid", 1.0)[1])


def test_the_checks_leave_the_random_state_alone():
    state = torch.get_rng_state()
    for check, right, _ in CASES:
        check(right)
    assert torch.equal(torch.get_rng_state(), state)
