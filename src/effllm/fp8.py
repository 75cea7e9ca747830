"""FP8 training in simulation: DeepSeek-V3's fine-grained scaling, on any CPU.

DeepSeek-V3 (arXiv:2412.19437, §3.3) multiplies matrices in FP8: every input of a GEMM is
stored in E4M3 (4 exponent bits, 3 mantissa bits, largest value 448) together with a float32
scaling factor. One factor per tensor lets a single outlier set the scale of everything, so V3
scales each **1 × 128 tile** of activations (one token, 128 channels) and each **128 × 128
block** of weights by its own max-abs, ``s = amax / 448``, computed online. The tensor cores
accumulate FP8 products with about 14 bits of precision, so V3 copies the partial sums into
float32 registers every ``N_C = 128`` elements of the inner dimension.

This module simulates all of it with PyTorch's ``float8_e4m3fn`` and ``float8_e5m2`` dtypes,
whose casts work on a CPU: *fake quantisation* rounds a float32 tensor to the values FP8 with a
given scale can hold and computes in float32 from there.

Shape rule: the groups must tile the tensor exactly. A tile or block size that does not divide
the dimension it runs along raises ``ValueError`` naming the shape (no padding), as V3's own
``act_quant`` kernel asserts.

Overflow: every cast here saturates (values beyond the format's largest are clamped to it
before the cast), so the result never depends on what a PyTorch version does on overflow
(torch 2.13 on a CPU saturates ``float8_e4m3fn``, which has no infinity, and gives ``inf`` for
``float8_e5m2``; the lab measures it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

FORMATS: dict[str, torch.dtype] = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
GRANULARITIES = ("tensor", "row", "tile", "block")
BLOCK = 128  # V3's tile width and block side, and N_C, its promotion interval
AMAX_FLOOR = 1e-12  # an all-zero group gets this max-abs, so its scale is not zero


def fmax(fmt: str = "e4m3") -> float:
    """The largest finite value of an FP8 format: 448 for E4M3, 57344 for E5M2."""
    return float(torch.finfo(_dtype(fmt)).max)


def _dtype(fmt: str) -> torch.dtype:
    if fmt not in FORMATS:
        raise ValueError(f"unknown FP8 format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


def cast(x: torch.Tensor, fmt: str = "e4m3") -> torch.Tensor:
    """Round x to the nearest value of ``fmt``, saturating at ±fmax; returned as float32.

    x: any shape -> the same shape, float32.
    """
    m = fmax(fmt)
    return x.float().clamp(-m, m).to(_dtype(fmt)).float()


def representable(fmt: str = "e4m3") -> torch.Tensor:
    """Every finite non-negative value of ``fmt``, ascending: (n_values,) float32."""
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    values = codes.view(_dtype(fmt)).float()
    return values[torch.isfinite(values) & (values >= 0)].unique()


def _groups(x: torch.Tensor, granularity: str, block: int) -> tuple[int, int]:
    """(rows, columns) of one scaling group of the 2-D tensor x for ``granularity``."""
    if x.dim() != 2:
        raise ValueError(
            f"expected a 2-D tensor (rows, inner dimension), got shape {tuple(x.shape)}"
        )
    M, K = x.shape
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; choose one of {GRANULARITIES}")
    rows, cols = {"tensor": (M, K), "row": (1, K), "tile": (1, block), "block": (block, block)}[
        granularity
    ]
    if M % rows or K % cols:
        raise ValueError(
            f"shape {tuple(x.shape)} is not divisible into {granularity} groups of "
            f"{rows} x {cols}; this module does not pad"
        )
    return rows, cols


def group_amax(x: torch.Tensor, granularity: str, block: int = BLOCK) -> torch.Tensor:
    """Max-abs of each scaling group of x: (M, K) -> (M / rows, K / cols) for groups of
    rows x cols (per tensor (1, 1), per row (M, 1), 1 x block tiles (M, K / block),
    block x block blocks (M / block, K / block))."""
    rows, cols = _groups(x, granularity, block)
    M, K = x.shape
    g = x.float().reshape(M // rows, rows, K // cols, cols)
    return g.abs().amax(dim=(1, 3)).clamp(min=AMAX_FLOOR)


def _per_group(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """x: (M, K) as (M / rows, rows, K / cols, cols), to broadcast s: (M / rows, K / cols)."""
    (M, K), (gm, gk) = x.shape, s.shape
    return x.reshape(gm, M // gm, gk, K // gk)


def quantize(
    x: torch.Tensor, granularity: str = "tile", block: int = BLOCK, fmt: str = "e4m3"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each group by s = amax / fmax and round: x ≈ q · s.

    x: (M, K) -> q: (M, K) float32 holding FP8 values, s: (M / rows, K / cols) float32.
    """
    s = group_amax(x, granularity, block) / fmax(fmt)
    q = cast(_per_group(x.float(), s) / s[:, None, :, None], fmt)
    return q.reshape(x.shape), s


def dequantize(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """q · s, each group times its scale: q (M, K), s (M / rows, K / cols) -> (M, K)."""
    return (_per_group(q, s) * s[:, None, :, None]).reshape(q.shape)


def fake_quant(
    x: torch.Tensor, granularity: str = "tile", block: int = BLOCK, fmt: str = "e4m3"
) -> torch.Tensor:
    """x rounded to what FP8 with per-group scales holds: (M, K) -> (M, K) float32."""
    return dequantize(*quantize(x, granularity, block, fmt))


def quantize_delayed(
    x: torch.Tensor, amax_history: torch.Tensor, fmt: str = "e4m3"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Delayed per-tensor scaling: the scale comes from earlier steps, s = max(history) / fmax,
    and values beyond it saturate. x: any shape -> q: same shape, s: () float32."""
    s = amax_history.float().max() / fmax(fmt)
    return cast(x.float() / s, fmt), s


def scaled_matmul(
    x: torch.Tensor,
    w: torch.Tensor,
    x_granularity: str = "tile",
    w_granularity: str = "block",
    block: int = BLOCK,
    fmt: str = "e4m3",
) -> torch.Tensor:
    """The FP8 GEMM y = (q_x · s_x)(q_W · s_W)^T, with exact (float32) accumulation.

    x: (M, K) activations, w: (N, K) weights as ``nn.Linear`` stores them -> y: (M, N).
    V3's recipe is the default: 1 x 128 tiles for x, 128 x 128 blocks for W.
    """
    return fake_quant(x, x_granularity, block, fmt) @ fake_quant(w, w_granularity, block, fmt).T


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """||approx - exact|| / ||exact|| (Frobenius norms, in float64)."""
    a, b = approx.detach().double(), exact.detach().double()
    return float((a - b).norm() / b.norm())


def with_outlier_channels(
    x: torch.Tensor,
    w: torch.Tensor,
    n_outliers: int,
    gain: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x with ``n_outliers`` random channels multiplied by ``gain``, and W with the matching
    columns divided by it: x' W'^T = x W^T exactly, but x' has outlier channels, as LLM
    activations do. x: (M, K), w: (N, K) -> x': (M, K), w': (N, K)."""
    d = torch.ones(x.shape[1])
    d[torch.randperm(x.shape[1], generator=generator)[:n_outliers]] = gain
    return x * d, w / d


# --- accumulation --------------------------------------------------------------------------


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """x rounded to nearest with ``bits`` mantissa bits after the leading one (float32 has 23):
    x = m · 2^e with 0.5 <= |m| < 1 becomes round(m · 2^(bits+1)) · 2^(e - bits - 1). Any shape."""
    m, e = torch.frexp(x.float())
    return torch.ldexp(torch.round(m * 2.0 ** (bits + 1)), e - (bits + 1))


def accumulate(
    products: torch.Tensor, bits: int = 14, promote_every: int | None = None
) -> torch.Tensor:
    """Sum ``products`` along the last axis in an accumulator of ``bits`` mantissa bits.

    After every addition the running sum is rounded to ``bits`` bits (the tensor cores' limited
    accumulation). With ``promote_every = N_C`` the partial sum is added into a float32 total and
    restarted every N_C products, as V3 does with N_C = 128; ``None`` never promotes.
    products: (..., K) -> (...) float32.
    """
    p = products.float()
    acc = torch.zeros(p.shape[:-1])
    total = torch.zeros(p.shape[:-1])
    for k in range(p.shape[-1]):
        acc = round_mantissa(acc + p[..., k], bits)
        if promote_every and (k + 1) % promote_every == 0:
            total, acc = total + acc, torch.zeros_like(acc)
    return total + acc


# --- training --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How the FP8 GEMMs of a Linear layer scale their inputs.

    ``x``, ``w``, ``grad``: the granularity of activations, weights and output gradients (each
    along the inner dimension of its GEMM); ``fmt`` and ``grad_fmt``: the formats of the forward
    inputs and of the gradients (V3: E4M3 for all). ``outlier_gain``: the first ``n_outliers``
    input channels of every layer are multiplied by it and the matching weight columns divided
    by it, which leaves x W^T unchanged in exact arithmetic but gives the quantiser activations
    with outlier channels (1: none).
    """

    x: str = "tile"
    w: str = "block"
    grad: str = "tile"
    fmt: str = "e4m3"
    grad_fmt: str = "e4m3"
    block: int = BLOCK
    outlier_gain: float = 1.0
    n_outliers: int = 2


RECIPES = {
    "per-tensor": Recipe(x="tensor", w="tensor", grad="tensor"),
    "fine-grained": Recipe(),  # V3: 1 x 128 tiles for activations and gradients, 128 x 128 blocks
}


class _FP8GEMM(torch.autograd.Function):
    """y = Q(x) Q(W)^T forward; backward straight through the rounding, with the inputs of the
    two backward GEMMs quantised too: dx = Q(dy) Q(W), dW = Q(dy^T) Q(x^T)^T."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, r: Recipe) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.recipe = r
        return fake_quant(x, r.x, r.block, r.fmt) @ fake_quant(w, r.w, r.block, r.fmt).T

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x, w = ctx.saved_tensors
        r = ctx.recipe
        g, gf = r.grad, r.grad_fmt
        # dx = dy W: inner dimension N; W's blocks are square, so its granularity is unchanged
        w_t = fake_quant(w.T.contiguous(), r.w, r.block, r.fmt)
        dx = fake_quant(dy, g, r.block, gf) @ w_t.T
        # dW = dy^T x: inner dimension M (tokens), so both inputs are scaled along tokens
        dw = (
            fake_quant(dy.T.contiguous(), g, r.block, gf)
            @ fake_quant(x.T.contiguous(), r.x, r.block, r.fmt).T
        )
        return dx, dw, None


def fp8_linear(x: torch.Tensor, w: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """x W^T with FP8 fake-quantised GEMM inputs: x (..., K), w (N, K) -> (..., N)."""
    K = x.shape[-1]
    x2 = x.reshape(-1, K)
    if recipe.outlier_gain != 1.0:
        d = torch.ones(K, device=x.device)
        d[: recipe.n_outliers] = recipe.outlier_gain
        x2, w = x2 * d, w / d
    return _FP8GEMM.apply(x2, w, recipe).reshape(*x.shape[:-1], w.shape[0])


class FP8Linear(nn.Linear):
    """An ``nn.Linear`` (no bias) whose matrix multiplications run in simulated FP8."""

    recipe: Recipe | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features)"""
        if self.recipe is None:
            return super().forward(x)
        return fp8_linear(x, self.weight, self.recipe)


def fp8_layers(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers V3 would run in FP8: those inside the transformer blocks (attention
    and feed-forward projections). The embedding, output head, norms, the attention scores and
    softmax, and an MoE's gate (not an ``nn.Linear``) stay in full precision."""
    blocks = getattr(model, "blocks", model)
    return [m for m in blocks.modules() if isinstance(m, nn.Linear)]


@contextmanager
def fp8_training(model: nn.Module, recipe: Recipe) -> Iterator[nn.Module]:
    """Within the block, ``model``'s block Linears compute in simulated FP8 with ``recipe``.

    The weights are not copied and stay float32 (V3 keeps float32 master weights); leaving the
    block restores full-precision matrix multiplications.
    """
    layers = fp8_layers(model)
    if not layers:
        raise ValueError("the model has no Linear layers inside its blocks")
    for m in layers:
        if m.bias is not None:
            raise ValueError("fp8_training supports Linear layers without bias only")
        m.__class__, m.recipe = FP8Linear, recipe
    try:
        yield model
    finally:
        for m in layers:
            m.__class__ = nn.Linear
            del m.recipe


# --- memory ----------------------------------------------------------------------------------


def bytes_per_param(recipe: str) -> dict[str, float]:
    """Bytes per parameter of what training keeps, for a BF16 or an FP8 ("fp8") recipe.

    ``weights used in GEMMs``: the copy the matrix multiplications read (2 in BF16; 1 in FP8,
    plus a float32 scale per 128 x 128 block);
    ``master weights`` and ``gradients``: float32 in both (V3 keeps master weights and
    gradients accumulated in FP32); ``optimizer state``: AdamW's two moments, float32 in the
    BF16 baseline, BF16 in V3.
    """
    if recipe not in ("bf16", "fp8"):
        raise ValueError(f"recipe must be 'bf16' or 'fp8', got {recipe!r}")
    fp8 = recipe == "fp8"
    return {
        "weights used in GEMMs": 1.0 + 4.0 / BLOCK**2 if fp8 else 2.0,
        "master weights": 4.0,
        "gradients": 4.0,
        "optimizer state": 2 * (2.0 if fp8 else 4.0),
    }
