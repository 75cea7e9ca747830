"""Lab 7's checks (effllm.check_fp8): the right function passes, each known mistake is rejected
with its message, and a result off by 1% is rejected."""

import pytest
import torch

from effllm import check_fp8 as lab7
from effllm import fp8


def tiles(x):
    M, K = x.shape
    s = x.abs().reshape(M, K // 128, 128).amax(-1) / 448
    q = (x.reshape(M, K // 128, 128) / s[..., None]).to(torch.float8_e4m3fn).float()
    return q.reshape(M, K), s


def blocks(w):
    N, K = w.shape
    b = w.reshape(N // 128, 128, K // 128, 128)
    s = b.abs().amax(dim=(1, 3)) / 448
    q = (b / s[:, None, :, None]).to(torch.float8_e4m3fn).float()
    return q.reshape(N, K), s


def chunked_gemm(q_x, s_x, q_w, s_w):
    """The kernel's way: one FP8 GEMM per 128-wide chunk of K, scaled as it is promoted."""
    y = 0
    for c in range(s_x.shape[1]):
        k = slice(128 * c, 128 * (c + 1))
        sw = s_w[:, c].repeat_interleave(128)[: q_w.shape[0]]
        y = y + (q_x[:, k] @ q_w[:, k].T) * s_x[:, c : c + 1] * sw
    return y


def promoted(p, bits, n_c):
    total = torch.zeros(p.shape[0])
    for start in range(0, p.shape[1], n_c):
        acc = torch.zeros(p.shape[0])
        for k in range(start, min(start + n_c, p.shape[1])):
            acc = fp8.round_mantissa(acc + p[:, k], bits)
        total = total + acc
    return total


def low_total(p, bits, n_c):
    total = torch.zeros(p.shape[0])
    for c in p.split(n_c, dim=1):
        total = fp8.round_mantissa(total + promoted(c, bits, n_c), bits)
    return total


def delayed(x, history):
    s = history.max() / 448
    return (x / s).clamp(-448, 448).to(torch.float8_e4m3fn).float(), s


LAB7 = [
    (
        lab7.quantize_tiles,
        tiles,
        [
            (lambda x: fp8.quantize(x, "row"), "each row one scale"),
            (lambda x: fp8.quantize(x, "tensor"), "whole tensor one scale"),
            (lambda x: (tiles(x)[0], 1 / tiles(x)[1]), "448 / amax"),
            (
                lambda x: (fp8.cast(x * tiles(x)[1].repeat_interleave(128, 1)), tiles(x)[1]),
                "multiplies x by the scale",
            ),
        ],
    ),
    (
        lab7.quantize_blocks,
        blocks,
        [
            (lambda w: fp8.quantize(w, "tensor"), "whole matrix one scale"),
            (lambda w: fp8.quantize(w.T.contiguous(), "tile"), "1 x 128 tiles"),
            (lambda w: (blocks(w)[0], 1 / blocks(w)[1]), "448 / amax"),
        ],
    ),
    (
        lab7.scaled_matmul,
        chunked_gemm,
        [
            (lambda q_x, s_x, q_w, s_w: q_x @ q_w.T, "without their scales"),
            (lambda q_x, s_x, q_w, s_w: chunked_gemm(q_x, 1 / s_x, q_w, 1 / s_w), "divides"),
            (
                lambda q_x, s_x, q_w, s_w: chunked_gemm(
                    q_x, s_x[:, :1].expand_as(s_x), q_w, s_w[:, :1].expand_as(s_w)
                ),
                "first chunk's scales",
            ),
        ],
    ),
    (
        lab7.promoted_sum,
        promoted,
        [
            (lambda p, bits, n_c: promoted(p, bits, p.shape[1]), "never promotes"),
            (lambda p, bits, n_c: p.double().sum(1).float(), "float32 throughout"),
            (
                lambda p, bits, n_c: sum(
                    fp8.round_mantissa(c.sum(1), bits) for c in p.split(n_c, dim=1)
                ),
                "rounds each run's sum once",
            ),
            (lambda p, bits, n_c: low_total(p, bits, n_c), "total must be float32"),
        ],
    ),
    (
        lab7.quantize_delayed,
        delayed,
        [
            (lambda x, h: delayed(x, x.abs().max()), "online scaling"),
            (lambda x, h: delayed(x, h[-1]), "last step's max-abs"),
            (lambda x, h: delayed(x, h.mean()), "mean"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("check", "right", "wrongs"), LAB7, ids=lambda x: getattr(x, "__name__", "")
)
def test_lab7_checks_accept_the_method_and_name_each_mistake(
    check, right, wrongs, grades, one_percent_off
):
    grades(check, right, wrongs, one_percent_off(right))
