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
