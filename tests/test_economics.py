import math

import pytest

from effllm import economics as econ


def test_v3_cost_table_matches_the_report():
    df = econ.v3_training_cost().set_index("stage")
    assert df.loc["pre-training", "h800_gpu_hours"] == 2_664_000
    assert df.loc["context extension", "h800_gpu_hours"] == 119_000
    assert df.loc["post-training", "h800_gpu_hours"] == 5_000
    assert df.loc["total", "h800_gpu_hours"] == 2_788_000
    # Table 1 in USD: $5.328M, $0.238M, $0.01M, $5.576M at $2 per GPU hour.
    assert df.loc["pre-training", "cost_usd"] == pytest.approx(5.328e6)
    assert df.loc["context extension", "cost_usd"] == pytest.approx(0.238e6)
    assert df.loc["post-training", "cost_usd"] == pytest.approx(0.01e6)
    assert df.loc["total", "cost_usd"] == pytest.approx(5.576e6)


def test_cost_scales_with_price():
    assert econ.v3_training_cost(3.0).iloc[-1]["cost_usd"] == pytest.approx(3 * 2_788_000)


def test_six_n_d():
    assert econ.training_flops(37e9, 14.8e12) == pytest.approx(6 * 37e9 * 14.8e12)
    assert econ.training_flops(1, 1, flops_per_param_token=2) == 2


def test_mfu_and_gpu_hours_are_inverse():
    flops = econ.training_flops(37e9, 14.8e12)
    mfu = econ.model_flops_utilisation(flops, 2_664_000, 989e12)
    assert mfu == pytest.approx(3.2856e24 / (2_664_000 * 3600 * 989e12))
    assert 0.34 < mfu < 0.35
    assert econ.gpu_hours_for(flops, 989e12, mfu) == pytest.approx(2_664_000)


def test_dense_counterfactual_ratio_is_total_over_active():
    mfu = 0.3
    moe = econ.gpu_hours_for(econ.training_flops(37e9, 14.8e12), 989e12, mfu)
    dense = econ.gpu_hours_for(econ.training_flops(671e9, 14.8e12), 989e12, mfu)
    assert dense / moe == pytest.approx(671 / 37)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "x", None])
def test_non_positive_or_non_numeric_inputs_raise(bad):
    with pytest.raises(ValueError):
        econ.training_cost_usd(bad, 2.0)
    with pytest.raises(ValueError):
        econ.training_flops(37e9, bad)


def test_utilisation_above_one_is_rejected():
    with pytest.raises(ValueError, match="cannot exceed 1"):
        econ.gpu_hours_for(1e24, 989e12, 1.5)


def test_decode_compute_is_two_flops_per_active_parameter():
    assert econ.decode_flops_per_token(37e9) == 74e9


def test_serving_cost_by_hand():
    # 989 TFLOP/s at 10% over 74 GFLOPs per token: 1,336.5 tokens/s.
    tps = econ.tokens_per_second_per_gpu(37e9, 989e12, 0.1)
    assert tps == pytest.approx(989e12 * 0.1 / 74e9)
    # $2 per GPU hour over 1,336.5 * 3600 tokens, per million tokens: about $0.416.
    assert econ.serving_cost_per_million_tokens(tps, 2.0) == pytest.approx(2 / (tps * 3600) * 1e6)
    assert econ.serving_cost_per_million_tokens(1e6 / 3600, 2.0) == pytest.approx(2.0)


def test_dense_serving_costs_total_over_active_times_more():
    moe = econ.tokens_per_second_per_gpu(37e9, 989e12, 0.2)
    dense = econ.tokens_per_second_per_gpu(671e9, 989e12, 0.2)
    ratio = econ.serving_cost_per_million_tokens(dense, 2) / econ.serving_cost_per_million_tokens(
        moe, 2
    )
    assert ratio == pytest.approx(671 / 37)


def test_bad_serving_inputs_raise():
    with pytest.raises(ValueError, match="cannot exceed 1"):
        econ.tokens_per_second_per_gpu(37e9, 989e12, 1.2)
    with pytest.raises(ValueError, match="usd_per_gpu_hour"):
        econ.serving_cost_per_million_tokens(1000, -2.0)
    with pytest.raises(ValueError, match="active_params"):
        econ.decode_flops_per_token(-37e9)
