"""The FP8 simulation of Lab 7: formats, scaling groups, accumulation and the FP8 GEMM."""

import pytest
import torch

from effllm import fp8
from effllm.model import ModelConfig, Transformer


def test_format_limits_and_grid():
    assert fp8.fmax("e4m3") == 448.0 and fp8.fmax("e5m2") == 57344.0
    grid = fp8.representable("e4m3")
    assert grid[0] == 0 and grid[-1] == 448 and grid[1] == 2.0**-9  # smallest subnormal
    assert len(grid) == 127  # 0, 7 subnormals, 15 binades of 8 values minus NaN's code, less 1
    assert torch.equal(fp8.cast(grid), grid)  # every value of the grid is kept exactly
    assert fp8.representable("e5m2")[-1] == 57344
    with pytest.raises(ValueError, match="unknown FP8 format 'e3m4'"):
        fp8.fmax("e3m4")


def test_cast_saturates_instead_of_overflowing():
    x = torch.tensor([500.0, -1e6, float("inf")])
    assert fp8.cast(x).tolist() == [448.0, -448.0, 448.0]
    assert fp8.cast(torch.tensor([1e6]), "e5m2").item() == 57344.0
    assert fp8.cast(torch.tensor([2.0**-11])).item() == 0.0  # below half the smallest value


def test_round_trip_relative_error_is_within_half_a_spacing():
    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    for g in fp8.GRANULARITIES:
        err = (fp8.fake_quant(x, g) - x).abs()
        normal = x.abs() >= fp8.group_amax(x, g).max() * 2.0**-6 / 448 * 4
        # 3 mantissa bits: at most half of 2^-3 relative to the value, for normal numbers
        assert (err[normal] <= x.abs()[normal] * 2.0**-4 * 1.0001).all(), g


def f32(*values: float) -> list[float]:
    """The values rounded to float32, as the scales are stored."""
    return torch.tensor(values, dtype=torch.float32).tolist()


def test_exact_scales_on_known_inputs():
    x = torch.ones(128, 256)
    x[0, 0], x[5, 200], x[127, 255] = 4.0, -8.0, 2.0
    s = fp8.quantize(x, "tensor")[1]
    assert s.shape == (1, 1) and [s.item()] == f32(8 / 448)
    assert fp8.quantize(x, "row")[1][:, 0].tolist()[:6] == f32(4 / 448, *[1 / 448] * 4, 8 / 448)
    tiles = fp8.quantize(x, "tile")[1]
    assert tiles.shape == (128, 2) and tiles[5].tolist() == f32(1 / 448, 8 / 448)
    blocks = fp8.quantize(x, "block")[1]
    assert blocks.shape == (1, 2) and blocks.tolist() == [f32(4 / 448, 8 / 448)]
    q, s = fp8.quantize(x, "block")
    assert q.abs().max() == 448 and torch.equal(fp8.dequantize(q, s), x)  # powers of two: exact


def test_shapes_not_divisible_by_the_block_are_rejected_with_their_shape():
    with pytest.raises(ValueError, match=r"shape \(4, 100\) is not divisible into tile groups"):
        fp8.quantize(torch.ones(4, 100), "tile")
    with pytest.raises(ValueError, match=r"shape \(100, 128\) is not divisible into block"):
        fp8.quantize(torch.ones(100, 128), "block")
    with pytest.raises(ValueError, match="2-D"):
        fp8.quantize(torch.ones(2, 4, 128))
    assert fp8.quantize(torch.ones(3, 100), "row")[1].shape == (3, 1)  # rows need no tiling
    q, s = fp8.quantize(torch.zeros(2, 128), "tile")
    assert torch.isfinite(s).all() and (s > 0).all() and (q == 0).all()


def test_fine_grained_scaling_beats_per_tensor_on_outlier_channels():
    g = torch.Generator().manual_seed(0)
    x0, w0 = torch.randn(256, 512, generator=g), torch.randn(256, 512, generator=g)
    x, w = fp8.with_outlier_channels(x0, w0, 4, 1e5, g)
    exact = x0.double() @ w0.double().T
    assert fp8.relative_error(x.double() @ w.double().T, exact) < 1e-6
    per_tensor = fp8.relative_error(fp8.scaled_matmul(x, w, "tensor", "tensor"), exact)
    fine = fp8.relative_error(fp8.scaled_matmul(x, w), exact)
    plain = fp8.relative_error(fp8.scaled_matmul(x0, w0, "tensor", "tensor"), exact)
    assert fine < per_tensor / 2
    assert plain < 0.05  # without outliers per-tensor scaling is fine


def test_round_mantissa():
    x = torch.tensor([1.0 + 2.0**-10, 3.0, -1.0 - 3 * 2.0**-12, 1e-30])
    assert torch.equal(fp8.round_mantissa(x, 23), x)
    assert fp8.round_mantissa(x, 8).tolist()[:3] == [1.0, 3.0, -1.0]
    assert fp8.round_mantissa(torch.tensor([1.0 + 2.0**-14]), 14).item() == 1.0 + 2.0**-14
    assert fp8.round_mantissa(torch.tensor([1.0 + 2.0**-15]), 14).item() == 1.0  # a tie, to even


def test_accumulator_promotion():
    p = torch.full((1, 4096), 1.0 + 2.0**-8)
    exact = 4096 * (1.0 + 2.0**-8)
    assert fp8.accumulate(p, 23).item() == exact
    low = fp8.accumulate(p, 8).item()
    promoted = fp8.accumulate(p, 8, promote_every=128).item()
    assert abs(promoted - exact) < abs(low - exact) / 10
    g = torch.Generator().manual_seed(0)
    products = fp8.cast(torch.rand(16, 4096, generator=g)) * fp8.cast(
        torch.rand(16, 4096, generator=g)
    )
    exact = products.double().sum(1)
    short = (fp8.accumulate(products, 14).double() - exact).abs().max()
    assert (fp8.accumulate(products, 14, 128).double() - exact).abs().max() < short / 10


def test_fp8_gemm_forward_and_backward_quantise_and_pass_gradients_straight_through():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 256, generator=g, requires_grad=True)
    w = torch.randn(128, 256, generator=g, requires_grad=True)
    r = fp8.RECIPES["fine-grained"]
    y = fp8.fp8_linear(x, w, r)
    assert torch.equal(y, fp8.scaled_matmul(x.detach(), w.detach()))
    dy = torch.randn(128, 128, generator=g)
    y.backward(dy)
    assert fp8.relative_error(x.grad, dy @ w.detach()) < 0.1
    assert fp8.relative_error(w.grad, dy.T @ x.detach()) < 0.1
    assert not torch.equal(x.grad, dy @ w.detach())  # the backward GEMMs were quantised too


def test_outlier_gain_leaves_the_exact_product_unchanged():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(128, 128, generator=g), torch.randn(128, 128, generator=g)
    r = fp8.Recipe(outlier_gain=1e5, n_outliers=2)
    per_tensor = fp8.Recipe("tensor", "tensor", "tensor", outlier_gain=1e5)
    fine = fp8.relative_error(fp8.fp8_linear(x, w, r), x @ w.T)
    tensor = fp8.relative_error(fp8.fp8_linear(x, w, per_tensor), x @ w.T)
    assert fine < tensor / 2


def test_fp8_training_swaps_only_the_block_linears_and_restores_them():
    model = Transformer(ModelConfig(max_len=64, n_layer=1, d_model=128, d_ff=256))
    idx = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(0))
    ref = model(idx)[0]
    with fp8.fp8_training(model, fp8.RECIPES["fine-grained"]):
        assert len(fp8.fp8_layers(model)) == 7  # wq, wk, wv, wo, w1, w2, w3
        assert type(model.head) is torch.nn.Linear  # the output head stays in full precision
        quantised = model(idx)[0]
    assert type(model.blocks[0].ffn.w1) is torch.nn.Linear
    assert torch.equal(model(idx)[0], ref)
    assert 0 < fp8.relative_error(quantised, ref) < 0.05


def test_bytes_per_param():
    bf16, f8 = fp8.bytes_per_param("bf16"), fp8.bytes_per_param("fp8")
    assert sum(bf16.values()) == 18 and sum(f8.values()) == pytest.approx(13, abs=1e-3)
    with pytest.raises(ValueError, match="'fp16'"):
        fp8.bytes_per_param("fp16")
