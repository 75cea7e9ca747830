"""MoE load statistics on hand-made routings whose answers are worked out by hand here."""

import math

import pytest
import torch
from torch import nn

from effllm.moe import (
    MoE,
    MoEConfig,
    balance_loss,
    balance_step,
    expert_share_by_group,
    grouped_swiglu,
    load_entropy,
    max_violation,
)


def _routed(cfg: MoEConfig, indices: list[list[int]], d_model: int = 4) -> MoE:
    """An MoE layer whose last forward (as the statistics see it) chose ``indices``."""
    layer = MoE(d_model, cfg)
    layer.indices = torch.tensor(indices)
    layer.counts = torch.bincount(layer.indices.flatten(), minlength=cfg.n_routed)
    return layer


def test_expert_share_by_group_counts_every_repeated_pair():
    cfg = MoEConfig(n_routed=4, top_k=2)
    # group 0: tokens 0, 1 chose {0, 1} and {0, 2}; group 1: token 2 chose {2, 3}; group 2 none
    layer = _routed(cfg, [[0, 1], [0, 2], [2, 3]])
    table = expert_share_by_group(layer, torch.tensor([0, 0, 1]), 3)
    expected = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(table, expected)


def test_load_entropy_and_max_violation_closed_forms():
    # p = (1/2, 1/4, 1/4, 0): H = 1.5 ln 2, max log 4 = 2 ln 2, so 0.75
    assert load_entropy(torch.tensor([2, 1, 1, 0])) == pytest.approx(0.75)
    # p = (1/3, 2/3) over two experts: H / ln 2
    h = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3)) / math.log(2)
    assert load_entropy(torch.tensor([1, 2])) == pytest.approx(h)
    assert load_entropy(torch.tensor([7])) == 1.0  # one expert: always even
    assert load_entropy(torch.tensor([0, 0, 0])) == pytest.approx(0.0)  # no tokens at all
    assert max_violation(torch.tensor([3, 1, 0, 0])) == pytest.approx(2.0)  # 3 / 1 - 1
    assert max_violation(torch.tensor([2, 1, 1, 0])) == pytest.approx(1.0)
    assert max_violation(torch.tensor([6, 3])) == pytest.approx(1 / 3)  # 6 / 4.5 - 1


def test_balance_step_averages_statistics_over_layers_and_updates_bias_layers_only():
    gamma = 0.25
    skewed = _routed(MoEConfig(n_routed=4, top_k=1, bias_update_speed=gamma), [[0]] * 4)
    even = _routed(MoEConfig(n_routed=4, top_k=1, balancing="aux_loss"), [[0], [1], [2], [3]])
    third = _routed(MoEConfig(n_routed=4, top_k=2, balancing="none"), [[0, 1], [0, 2]])
    row = balance_step(nn.Sequential(skewed, even, third))
    # max_vio: (4/1 - 1) + 0 + (2/1 - 1), over 3 layers; entropy: 0 + 1 + 0.75, over 3 layers
    assert row["max_vio"] == pytest.approx((3 + 0 + 1) / 3)
    assert row["load_entropy"] == pytest.approx((0 + 1 + 0.75) / 3)
    assert [row[f"load_l0_e{i}"] for i in range(4)] == [1.0, 0.0, 0.0, 0.0]
    assert [row[f"load_l1_e{i}"] for i in range(4)] == [0.25] * 4
    assert [row[f"load_l2_e{i}"] for i in range(4)] == [0.5, 0.25, 0.25, 0.0]
    # b_i -= gamma sign(load_i - mean load): loads (4, 0, 0, 0), mean 1
    torch.testing.assert_close(skewed.gate.bias, torch.tensor([-gamma, gamma, gamma, gamma]))
    assert not even.gate.bias.any() and not third.gate.bias.any()
    assert balance_step(nn.Linear(2, 2)) == {}


def test_balance_loss_with_two_experts_per_token():
    cfg = MoEConfig(n_routed=4, top_k=2, aux_loss_alpha=0.5)
    scores = torch.tensor([[0.8, 0.6, 0.4, 0.2]]).repeat(4, 1)  # P = (0.4, 0.3, 0.2, 0.1)
    counts = torch.tensor([4, 2, 2, 0])  # f_i = N_r / (K_r T) counts_i = (2, 1, 1, 0)
    loss = balance_loss(scores, counts, cfg)
    assert loss.item() == pytest.approx(0.5 * (2 * 0.4 + 0.3 + 0.2))


def test_zero_bias_speed_is_allowed_and_leaves_the_bias():
    layer = _routed(MoEConfig(n_routed=3, top_k=1, bias_update_speed=0), [[0], [0], [1]])
    layer.update_bias()
    assert not layer.gate.bias.any()
    with pytest.raises(ValueError, match="bias_update_speed and aux_loss_alpha must be >= 0"):
        MoEConfig(bias_update_speed=-1e-6)
    with pytest.raises(ValueError, match="route_scale positive"):
        MoEConfig(route_scale=0)


def test_a_single_routed_expert_takes_every_token():
    torch.manual_seed(0)
    layer = MoE(4, MoEConfig(n_routed=1, n_shared=0, top_k=1, d_expert=3))
    x = torch.randn(2, 3, 4)
    y = layer(x)
    assert layer.counts.tolist() == [6]
    w1, w3 = layer.w13[0, :, :3], layer.w13[0, :, 3:]
    expected = (torch.nn.functional.silu(x @ w1) * (x @ w3)) @ layer.w2[0]  # g = s / s = 1
    torch.testing.assert_close(y, expected)
    with pytest.raises(ValueError, match="at least one routed expert; n_routed=0"):
        MoEConfig(n_routed=0, top_k=1)


def test_grouped_swiglu_rejects_counts_that_do_not_split_the_rows():
    x, rows, gates = torch.randn(3, 4), torch.tensor([0, 1, 2, 0, 2]), torch.ones(5)
    w13, w2 = torch.randn(2, 4, 6), torch.randn(2, 3, 4)
    assert grouped_swiglu(x, gates, w13, w2, rows, [2, 3]).shape == (3, 4)
    assert grouped_swiglu(x, gates, w13, w2, rows, [0, 5]).shape == (3, 4)
    with pytest.raises(ValueError, match=r"counts \[2, 2\] do not split 5 rows over 2"):
        grouped_swiglu(x, gates, w13, w2, rows, [2, 2])
    with pytest.raises(ValueError, match=r"counts \[1, 1, 3\] do not split 5 rows over 2"):
        grouped_swiglu(x, gates, w13, w2, rows, [1, 1, 3])


def test_initial_scales_of_router_and_expert_weights():
    torch.manual_seed(0)
    d_model = 256
    layer = MoE(d_model, MoEConfig(n_routed=64, n_shared=2, top_k=2, d_expert=64))
    # unit-variance router logits for unit-variance inputs: std(e_i) = d_model^-1/2
    assert layer.gate.weight.std().item() == pytest.approx(d_model**-0.5, rel=0.03)
    assert layer.w13.std().item() == pytest.approx(0.02, rel=0.03)
    assert layer.w2.std().item() == pytest.approx(0.02, rel=0.03)
    assert not layer.gate.bias.any()
