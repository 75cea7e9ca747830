import dataclasses

import pytest
import torch
import torch.nn.functional as F

from effllm import presets
from effllm.attention import AttentionConfig
from effllm.model import ModelConfig, Transformer
from effllm.moe import (
    MoE,
    MoEConfig,
    balance_loss,
    balance_step,
    count_params,
    expert_share_by_group,
    load_entropy,
    max_violation,
)


def reference_moe(layer: MoE, x: torch.Tensor) -> torch.Tensor:
    """The MoE written token by token from the DeepSeek-V3 equations: slow and obvious.

    x: (tokens, d_model). Every expert is w2(silu(x w1) * x w3) with w1, w3 the halves of w13.
    """
    cfg, h = layer.cfg, layer.cfg.d_expert

    def expert(i: int, u: torch.Tensor) -> torch.Tensor:
        w1, w3 = layer.w13[i, :, :h], layer.w13[i, :, h:]
        return (F.silu(u @ w1) * (u @ w3)) @ layer.w2[i]

    outs = []
    for u in x:
        logits = layer.gate.weight @ u
        s = torch.sigmoid(logits) if cfg.router == "sigmoid" else torch.softmax(logits, dim=0)
        chosen = sorted(range(cfg.n_routed), key=lambda i: -(s[i] + layer.gate.bias[i]).item())
        chosen = chosen[: cfg.top_k]
        g = s[chosen]
        if cfg.router == "sigmoid":
            g = g / g.sum()
        out = sum(expert(i, u) for i in range(cfg.n_shared))
        for weight, i in zip(g * cfg.route_scale, chosen, strict=True):
            out = out + weight * expert(cfg.n_shared + i, u)
        outs.append(out)
    return torch.stack(outs)


def _layer(router: str, n_shared: int = 2, seed: int = 0, **kw) -> MoE:
    torch.manual_seed(seed)
    cfg = MoEConfig(n_routed=6, n_shared=n_shared, top_k=2, d_expert=5, router=router, **kw)
    layer = MoE(8, cfg).double()
    with torch.no_grad():  # larger weights than the init, so that every term matters
        for p in layer.parameters():
            p.normal_(0, 0.5)
    return layer


def _grads(layer: MoE, x: torch.Tensor, out: torch.Tensor) -> list[torch.Tensor]:
    target = torch.randn_like(out, generator=torch.Generator().manual_seed(1))
    params = [x, layer.gate.weight, layer.w13, layer.w2]
    return list(torch.autograd.grad((out * target).sum(), params))


@pytest.mark.parametrize("router", ["sigmoid", "softmax"])
@pytest.mark.parametrize("n_shared", [0, 2])
def test_moe_matches_per_token_reference_forward_and_backward(router, n_shared):
    layer = _layer(router, n_shared, route_scale=1.5)
    with torch.no_grad():
        layer.gate.bias.copy_(torch.linspace(-0.3, 0.3, 6))
    x = torch.randn(3, 7, 8, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    ref = reference_moe(layer, x.reshape(-1, 8)).reshape(3, 7, 8)
    torch.testing.assert_close(out, ref)
    for got, want in zip(_grads(layer, x, out), _grads(layer, x, ref), strict=True):
        torch.testing.assert_close(got, want)
    # the routed tokens are counted once per (token, chosen expert) pair
    assert layer.counts.sum().item() == 21 * 2 and layer.indices.shape == (21, 2)


def test_only_chosen_experts_get_gradient():
    layer = _layer("sigmoid", n_shared=1)
    with torch.no_grad():
        layer.gate.bias.copy_(torch.tensor([5.0, 5.0, 0, 0, 0, 0]))  # every token picks 0 and 1
    x = torch.randn(10, 8, dtype=torch.float64)
    layer(x).sum().backward()
    used = layer.w2.grad.flatten(1).abs().sum(dim=1) > 0
    assert used.tolist() == [True, True, True, False, False, False, False]


def test_bias_steers_selection_but_not_gate_weights():
    layer = _layer("sigmoid")
    x = torch.randn(50, 8, dtype=torch.float64)
    with torch.no_grad():
        layer.gate.bias.zero_()
        layer.gate.bias[4] = 10.0
    scores, weights, indices = layer.gate(x)
    assert (indices == 4).any(dim=1).all()  # the bias forces expert 4 into every top-2
    raw = torch.sigmoid(x @ layer.gate.weight.T)
    torch.testing.assert_close(scores, raw)  # scores carry no bias
    picked = raw.gather(1, indices)
    torch.testing.assert_close(weights, picked / picked.sum(dim=1, keepdim=True))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(50, dtype=torch.float64))


def test_softmax_gate_weights_are_unnormalised_top_k_probabilities():
    layer = _layer("softmax")
    x = torch.randn(20, 8, dtype=torch.float64)
    scores, weights, indices = layer.gate(x)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(20, dtype=torch.float64))
    torch.testing.assert_close(weights, scores.topk(2, dim=1).values)
    assert (weights.sum(dim=1) < 1).all()


def test_update_bias_moves_towards_balance():
    layer = _layer("sigmoid", bias_update_speed=0.02)
    with torch.no_grad():
        layer.gate.weight[0] += 3.0  # expert 0 wins nearly everything at first
    x = torch.randn(256, 8, dtype=torch.float64) + 1.0
    layer(x)
    before = layer.counts.clone()
    layer.update_bias()
    mean = before.float().mean()
    bias = layer.gate.bias
    assert bias[0] == pytest.approx(-0.02)  # overloaded: pushed down by exactly gamma
    assert all(bias[i] == pytest.approx(0.02) for i in range(6) if before[i] < mean)
    for _ in range(300):
        layer(x)
        layer.update_bias()
    assert max_violation(layer.counts) < 0.5 * max_violation(before)
    assert load_entropy(layer.counts) > load_entropy(before) + 0.1


def test_balance_step_updates_only_bias_layers_and_reports_loads(tiny_config):
    for balancing, moves in (("bias", True), ("none", False), ("aux_loss", False)):
        moe = MoEConfig(n_routed=4, n_shared=1, top_k=2, d_expert=8, balancing=balancing)
        torch.manual_seed(0)
        model = Transformer(dataclasses.replace(tiny_config, ffn="moe", moe=moe))
        model(torch.randint(0, 256, (2, 16)))
        row = balance_step(model)
        assert set(row) == {f"load_l{ly}_e{e}" for ly in range(2) for e in range(4)} | {
            "load_entropy",
            "max_vio",
        }
        assert sum(row[f"load_l0_e{e}"] for e in range(4)) == pytest.approx(1.0)
        assert 0 <= row["load_entropy"] <= 1
        moved = any(b.ffn.gate.bias.abs().sum() > 0 for b in model.blocks)
        assert moved == moves


def test_aux_loss_only_with_aux_balancing_in_training(tiny_config):
    torch.manual_seed(0)
    idx = torch.randint(0, 256, (2, 16))
    moe = MoEConfig(n_routed=4, top_k=2, d_expert=8, balancing="aux_loss", aux_loss_alpha=0.5)
    model = Transformer(dataclasses.replace(tiny_config, ffn="moe", moe=moe))
    _, train_loss = model(idx, idx)
    aux = [b.ffn.aux_loss for b in model.blocks]
    assert all(a is not None and a.item() > 0 for a in aux)
    # the balance loss trains the router: its gradient reaches the gate's weights
    assert model.blocks[0].ffn.gate.weight.grad is None
    torch.autograd.backward(aux[0], inputs=[model.blocks[0].ffn.gate.weight])
    assert model.blocks[0].ffn.gate.weight.grad.abs().sum() > 0
    model.eval()
    _, eval_loss = model(idx, idx)
    assert all(b.ffn.aux_loss is None for b in model.blocks)
    assert train_loss.item() == pytest.approx(eval_loss.item() + sum(a.item() for a in aux))
    for balancing in ("none", "bias"):
        torch.manual_seed(0)
        other_moe = dataclasses.replace(moe, balancing=balancing)
        other = Transformer(dataclasses.replace(tiny_config, ffn="moe", moe=other_moe))
        _, loss = other(idx, idx)
        assert all(b.ffn.aux_loss is None for b in other.blocks)
        other.eval()
        assert loss.item() == pytest.approx(other(idx, idx)[1].item())


def test_balance_loss_is_alpha_when_even_and_larger_when_skewed():
    cfg = MoEConfig(n_routed=4, top_k=1, aux_loss_alpha=0.1)
    even_scores = torch.full((8, 4), 0.5)
    assert balance_loss(even_scores, torch.tensor([2, 2, 2, 2]), cfg).item() == pytest.approx(0.1)
    skewed = torch.tensor([[0.9, 0.1, 0.1, 0.1]]).repeat(8, 1)
    assert balance_loss(skewed, torch.tensor([8, 0, 0, 0]), cfg).item() == pytest.approx(
        0.1 * 4 * 0.75
    )


def test_load_statistics():
    assert load_entropy(torch.tensor([5, 5, 5, 5])) == pytest.approx(1.0)
    assert load_entropy(torch.tensor([20, 0, 0, 0])) == pytest.approx(0.0, abs=1e-6)
    assert 0 < load_entropy(torch.tensor([10, 5, 5, 0])) < 1
    assert max_violation(torch.tensor([5, 5, 5, 5])) == pytest.approx(0.0)
    assert max_violation(torch.tensor([20, 0, 0, 0])) == pytest.approx(3.0)


def test_expert_share_by_group():
    layer = _layer("sigmoid")
    with torch.no_grad():
        layer.gate.bias.copy_(torch.tensor([9.0, 9.0, 0, 0, 0, 0]))
    layer(torch.randn(6, 8, dtype=torch.float64))
    table = expert_share_by_group(layer, torch.tensor([0, 0, 1, 1, 1, 2]), 4)
    assert table.shape == (4, 6)
    torch.testing.assert_close(table[:3, :2], torch.full((3, 2), 0.5))
    assert table[3].sum() == 0  # a group with no tokens stays empty
    with pytest.raises(ValueError, match="group ids"):
        expert_share_by_group(layer, torch.zeros(5, dtype=torch.long), 4)


def test_count_params_total_and_active():
    d, n_layer = 16, 3
    moe = MoEConfig(n_routed=8, n_shared=1, top_k=2, d_expert=4)
    base = dict(max_len=16, n_layer=n_layer, d_model=d, attention=AttentionConfig(n_head=2))
    model = Transformer(ModelConfig(**base, ffn="moe", moe=moe))
    total, active = count_params(model)
    per_expert = 3 * d * moe.d_expert
    assert total == model.num_params()
    assert total - active == n_layer * (8 - 2) * per_expert
    # active = a dense model whose hidden size is (K_r + N_s) d_expert, plus the router
    dense = Transformer(ModelConfig(**base, d_ff=moe.active_hidden))
    assert active == dense.num_params() + n_layer * 8 * d
    assert count_params(dense) == (dense.num_params(), dense.num_params())


def test_bad_configurations_are_value_errors():
    with pytest.raises(ValueError, match="top_k=5 must be between 1 and n_routed=4"):
        MoEConfig(n_routed=4, top_k=5)
    with pytest.raises(ValueError, match="at least one routed expert; n_routed=0"):
        MoEConfig(n_routed=0, top_k=1)
    with pytest.raises(ValueError, match="top_k=0"):
        MoEConfig(top_k=0)
    with pytest.raises(ValueError, match="unknown router 'relu'"):
        MoEConfig(router="relu")
    with pytest.raises(ValueError, match="unknown balancing 'magic'"):
        MoEConfig(balancing="magic")
    with pytest.raises(ValueError, match="n_shared=-1"):
        MoEConfig(n_shared=-1)
    moe = MoEConfig()
    with pytest.raises(ValueError, match="d_model=30 must be divisible by n_head=4"):
        Transformer(
            ModelConfig(d_model=30, attention=AttentionConfig(n_head=4), ffn="moe", moe=moe)
        )
    with pytest.raises(ValueError, match="needs ModelConfig.moe"):
        Transformer(ModelConfig(ffn="moe"))


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_lab_comparisons_are_fair(preset):
    models = presets.PRESETS["moe"][preset].models()

    def without_router(name):  # (total, active) parameters less the routers' weights
        cfg = models[name]
        router = cfg.n_layer * cfg.moe.n_routed * cfg.d_model if cfg.ffn == "moe" else 0
        total, active = count_params(Transformer(cfg))
        return total - router, active - router

    moe_total, moe_active = without_router("moe")
    assert without_router("dense_active") == (moe_active, moe_active)
    assert without_router("dense_total") == (moe_total, moe_total)
    assert without_router("conventional") == (moe_total, moe_active)
    assert models["conventional"].moe.n_routed < models["moe"].moe.n_routed
