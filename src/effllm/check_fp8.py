"""Lab 7's checks: V3's tile and block quantisers, the scaled FP8 GEMM, the promoted accumulator,
and the exercise's delayed scaling.

Each function takes the student's function, checks it against :mod:`effllm.fp8` with
:func:`effllm.checks.verify`, and returns the function the lab goes on with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from effllm import fp8
from effllm.checks import Case, Mistake, close, verify

E4M3_MAX = fp8.fmax("e4m3")
Quantiser = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _matrices(shapes: list[tuple[int, int]], seed: int, outliers: bool = True) -> list[Case]:
    """Seeded Gaussian matrices of the given shapes, some channels scaled up as outliers."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for i, (m, k) in enumerate(shapes):
        x = torch.randn(m, k, generator=g) * (i + 1)
        if outliers:
            x[:, torch.randint(k, (2,), generator=g)] *= 100.0
        cases.append(Case((x,), f"a {m} x {k} matrix"))
    return cases


def quantize_tiles(student: Quantiser) -> Quantiser:
    """q, s for 1 x 128 tiles: s = amax of each tile / 448, q = E4M3(x / s)."""
    cases = _matrices([(4, 128), (8, 384), (16, 256), (3, 512)], seed=0)
    return verify(
        "quantize_tiles",
        student,
        lambda x: fp8.quantize(x, "tile"),
        cases,
        [
            Mistake(
                lambda x: fp8.quantize(x, "row"),
                "it gives each row one scale: a tile is 128 channels of one row, so a row of "
                "K channels has K / 128 scales",
            ),
            Mistake(
                lambda x: fp8.quantize(x, "tensor"),
                "it gives the whole tensor one scale: every 1 x 128 tile needs its own",
            ),
            Mistake(
                lambda x: (
                    fp8.cast(x * fp8.quantize(x, "tile")[1].repeat_interleave(128, 1)),
                    fp8.quantize(x, "tile")[1],
                ),
                "it multiplies x by the scale before the cast; divide, so that the tile's "
                "largest value lands on 448",
            ),
            Mistake(
                lambda x: (fp8.quantize(x, "tile")[0], 1 / fp8.quantize(x, "tile")[1]),
                "it returns 448 / amax; the scale is s = amax / 448, so that x ≈ q · s",
            ),
        ],
        stand_in="fp8.quantize(x, 'tile')",
    )


def quantize_blocks(student: Quantiser) -> Quantiser:
    """q, s for 128 x 128 blocks: s = amax of each block / 448, q = E4M3(W / s)."""
    cases = _matrices([(128, 128), (256, 384), (384, 256)], seed=1)
    return verify(
        "quantize_blocks",
        student,
        lambda w: fp8.quantize(w, "block"),
        cases,
        [
            Mistake(
                lambda w: fp8.quantize(w, "tensor"),
                "it gives the whole matrix one scale: every 128 x 128 block needs its own",
            ),
            Mistake(
                lambda w: fp8.quantize(w.T.contiguous(), "tile"),
                "it scales 1 x 128 tiles; weights are scaled in 128 x 128 blocks",
            ),
            Mistake(
                lambda w: (fp8.quantize(w, "block")[0], 1 / fp8.quantize(w, "block")[1]),
                "it returns 448 / amax; the scale is s = amax / 448, so that W ≈ q · s",
            ),
        ],
        stand_in="fp8.quantize(W, 'block')",
    )


def _gemm_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    cases = []
    for m, k, n in [(4, 128, 128), (8, 256, 128), (16, 384, 256)]:
        x = torch.randn(m, k, generator=g)
        x[:, 3] *= 100.0
        q_x, s_x = fp8.quantize(x, "tile")
        q_w, s_w = fp8.quantize(torch.randn(n, k, generator=g), "block")
        cases.append(Case((q_x, s_x, q_w, s_w), f"x of {m} x {k}, W of {n} x {k}"))
    return cases


def _gemm_reference(q_x, s_x, q_w, s_w):
    return fp8.dequantize(q_x, s_x) @ fp8.dequantize(q_w, s_w).T


def _near(a, b) -> bool:
    """Equal up to float32 round-off of a different summation order."""
    if not (isinstance(a, torch.Tensor) and a.shape == b.shape):
        return close(a, b)
    return fp8.relative_error(a, b) < 1e-5


def scaled_matmul(student: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """y = Σ over 128-wide chunks c of K: (s_x[:, c] s_W[:, c]^T) ⊙ (q_x[:, c] q_W[:, c]^T)."""

    def no_scales(q_x, s_x, q_w, s_w):
        return q_x @ q_w.T

    def divides(q_x, s_x, q_w, s_w):
        return _gemm_reference(q_x, 1 / s_x, q_w, 1 / s_w)

    def first_chunk_scales(q_x, s_x, q_w, s_w):
        k = s_x.shape[1]
        return _gemm_reference(q_x, s_x[:, :1].expand(-1, k), q_w, s_w[:, :1].expand(-1, k))

    return verify(
        "scaled_matmul",
        student,
        _gemm_reference,
        _gemm_cases(),
        [
            Mistake(no_scales, "it multiplies the FP8 values without their scales: x ≈ q_x · s_x"),
            Mistake(divides, "it divides by the scales; x ≈ q_x · s_x, so multiply"),
            Mistake(
                first_chunk_scales,
                "it uses the first chunk's scales for all of K: each 128-wide chunk of the inner "
                "dimension has its own scales",
            ),
        ],
        compare=_near,
        stand_in="fp8.dequantize(q_x, s_x) @ fp8.dequantize(q_W, s_W).T",
    )


def _product_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    cases = []
    for n, k, bits, n_c in [(4, 512, 10, 128), (8, 1024, 14, 128), (3, 384, 8, 64)]:
        p = fp8.cast(torch.rand(n, k, generator=g) * 4) * fp8.cast(torch.rand(n, k, generator=g))
        cases.append(Case((p, bits, n_c), f"{n} sums of {k} products, {bits} bits, N_C = {n_c}"))
    return cases


def promoted_sum(
    student: Callable[[torch.Tensor, int, int], torch.Tensor],
) -> Callable[[torch.Tensor, int, int], torch.Tensor]:
    """Sum of each row: runs of N_C products in a bits-bit accumulator, added up in FP32."""

    def rounded_once(p, bits, n_c):
        chunks = p.split(n_c, dim=1)
        return sum(fp8.round_mantissa(c.sum(1), bits) for c in chunks)

    def low_total(p, bits, n_c):
        total = torch.zeros(p.shape[0])
        for c in p.split(n_c, dim=1):
            total = fp8.round_mantissa(total + fp8.accumulate(c, bits), bits)
        return total

    return verify(
        "promoted_sum",
        student,
        lambda p, bits, n_c: fp8.accumulate(p, bits, n_c),
        _product_cases(),
        [
            Mistake(
                lambda p, bits, n_c: fp8.accumulate(p, bits, None),
                "it never promotes: the whole row is summed in the short accumulator; add each "
                "run of N_C products into a float32 total and restart the accumulator",
            ),
            Mistake(
                lambda p, bits, n_c: fp8.accumulate(p, 23, n_c),
                "it sums in float32 throughout: round the running sum to `bits` mantissa bits "
                "after every addition, as the tensor cores do",
            ),
            Mistake(
                rounded_once,
                "it rounds each run's sum once; the tensor cores round after every addition",
            ),
            Mistake(low_total, "the total must be float32: it is the promotion's whole point"),
        ],
        stand_in="fp8.accumulate(p, bits, n_c)",
    )


def quantize_delayed(
    student: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Exercise: delayed scaling, s = max(amax history) / 448, q = E4M3(x / s), saturating."""
    g = torch.Generator().manual_seed(4)
    cases = []
    for i, spike in enumerate([0.5, 1.0, 4.0]):
        x = torch.randn(16, 64, generator=g) * (i + 1)
        history = x.abs().max() / spike * torch.tensor([0.7, 1.0, 0.8, 0.5])
        cases.append(Case((x, history), f"x whose max-abs is {spike}x the history's largest"))

    def current(x, history):
        return fp8.quantize_delayed(x, x.abs().max().reshape(1))

    return verify(
        "quantize_delayed",
        student,
        fp8.quantize_delayed,
        cases,
        [
            Mistake(
                current,
                "it uses the current tensor's max-abs: that is online scaling (V3's); delayed "
                "scaling takes the largest max-abs of the earlier steps",
            ),
            Mistake(
                lambda x, h: fp8.quantize_delayed(x, h[-1:]),
                "it uses the last step's max-abs only; take the largest of the history",
            ),
            Mistake(
                lambda x, h: fp8.quantize_delayed(x, h.mean().reshape(1)),
                "it uses the history's mean; take its largest value",
            ),
        ],
        stand_in="fp8.quantize_delayed",
    )
