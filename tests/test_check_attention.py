"""Lab 3's checks (effllm.check_attention): the right function passes, each known mistake is
rejected with its message, and a result off by 1% is rejected."""

import pytest
import torch
import torch.nn.functional as F

from effllm import check_attention as lab3
from effllm.attention import resolve


def values(cfg, d_model):
    r = resolve(cfg, d_model)
    if r.kind == "mla":
        return r.kv_lora_rank + r.qk_rope_head_dim
    return 2 * r.n_kv_groups * r.head_dim


def bytes_(cfg, d_model, dtype):
    return values(cfg, d_model) * dtype.itemsize


def naive_mode(cfg, d_model):
    r = resolve(cfg, d_model)
    return r.n_head * (r.qk_nope_head_dim + r.qk_rope_head_dim + r.v_head_dim)


def heads(x, n_h):
    return x.view(*x.shape[:-1], n_h, -1)


def keys_values(h, W_DKV, g, W_UK, W_UV, n_h):
    c_KV = F.rms_norm(h @ W_DKV.T, (W_DKV.shape[0],), g, 1e-6)
    return c_KV, heads(c_KV @ W_UK.T, n_h), heads(c_KV @ W_UV.T, n_h)


def scores(q_C, q_R, c_KV, k_R, W_UK, scale=None, rope=True, transpose=True):
    n_h, d_h = q_C.shape[2], q_C.shape[3]
    d_c, d_R = c_KV.shape[-1], k_R.shape[-1]
    if transpose:
        q_lat = torch.einsum("bthd,hdc->bthc", q_C, W_UK.view(n_h, d_h, d_c))
    else:
        q_lat = torch.einsum("bthd,chd->bthc", q_C, W_UK.reshape(d_c, n_h, d_h))
    s = q_lat @ c_KV[:, None].transpose(-1, -2)  # (B, T, H, S)
    if rope:
        s = s + q_R @ k_R[:, None].transpose(-1, -2)
    s = s.transpose(1, 2)  # (B, H, T, S)
    return s * (scale if scale is not None else (d_h + d_R) ** -0.5)


def mask(t, start_pos):
    i = torch.arange(t)[:, None]
    j = torch.arange(start_pos + t)[None, :]
    return j <= start_pos + i


LAB3 = [
    (
        lab3.kv_values_per_token,
        values,
        [
            (
                lambda c, d: values(c, d) // 2 if c.kind != "mla" else values(c, d),
                "counts only the keys",
            ),
            (
                lambda c, d: (
                    2 * resolve(c, d).n_head * resolve(c, d).head_dim
                    if c.kind != "mla"
                    else values(c, d)
                ),
                "for every \\*query\\* head",
            ),
            (
                lambda c, d: values(c, d) + (c.q_lora_rank or 0),
                "counts MLA's query latent",
            ),
            (
                lambda c, d: c.kv_lora_rank if c.kind == "mla" else values(c, d),
                "forgets MLA's decoupled rotary key",
            ),
            (
                lambda c, d: (
                    2 * c.n_head * resolve(c, d).qk_nope_head_dim
                    if c.kind == "mla"
                    else values(c, d)
                ),
                "an MHA model of the same shape",
            ),
            (lambda c, d: 2 * values(c, d), "bytes at 2 bytes a number"),
            (lambda c, d: 4 * values(c, d), "bytes at 4 bytes a number"),
        ],
    ),
    (
        lab3.kv_bytes_per_token,
        bytes_,
        [
            (lambda c, d, t: values(c, d), "returns numbers, not bytes"),
            (lambda c, d, t: 4 * values(c, d), "assumes 4 bytes a number"),
            (lambda c, d, t: 2 * values(c, d), "assumes 2 bytes a number"),
            (lambda c, d, t: 8 * bytes_(c, d, t), "returns bits"),
        ],
    ),
    (
        lab3.mla_keys_values,
        keys_values,
        [
            (
                lambda h, D, g, K, V, n: (
                    keys_values(h, D, g, K, V, n)[0],
                    heads(keys_values(h, D, g, K, V, n)[0] @ K, n),
                    heads(keys_values(h, D, g, K, V, n)[0] @ V, n),
                ),
                "up-projections use transposed weights",
            ),
            (
                lambda h, D, g, K, V, n: keys_values(h, D.T, g, K, V, n),
                "down-projection uses a transposed weight",
            ),
            (
                lambda h, D, g, K, V, n: (
                    keys_values(h, D, g, K, V, n)[0],
                    heads(h @ K.T, n),
                    heads(h @ V.T, n),
                ),
                "up-projects the input h",
            ),
            (
                lambda h, D, g, K, V, n: (
                    h @ D.T,
                    heads(h @ D.T @ K.T, n),
                    heads(h @ D.T @ V.T, n),
                ),
                "c\\^KV is not normalised",
            ),
            (
                lambda h, D, g, K, V, n: keys_values(h, D, torch.ones_like(g), K, V, n),
                "leaves out its gain",
            ),
            (
                lambda h, D, g, K, V, n: tuple(
                    x if i == 0 else x.reshape(*x.shape[:2], -1).view(*x.shape[:2], -1, n).mT
                    for i, x in enumerate(keys_values(h, D, g, K, V, n))
                ),
                "heads are mixed up in the reshape",
            ),
        ],
    ),
    (
        lab3.absorbed_scores,
        scores,
        [
            (lambda *a: scores(*a, rope=False), "leaves out the decoupled rotary part"),
            (lambda *a: scores(*a, scale=a[0].shape[-1] ** -0.5), "scale is 1/sqrt\\(d_h\\);"),
            (lambda *a: scores(*a, scale=a[2].shape[-1] ** -0.5), "scale is 1/sqrt\\(d_c\\);"),
            (
                lambda *a: scores(*a, scale=(a[2].shape[-1] + a[3].shape[-1]) ** -0.5),
                "scale is 1/sqrt\\(d_c \\+ d_h\\^R\\)",
            ),
            (lambda *a: scores(*a, scale=1.0), "not scaled"),
            (lambda *a: scores(*a, transpose=False), "absorbed without its transpose"),
        ],
    ),
    (
        lab3.causal_mask,
        mask,
        [
            (
                lambda t, s: torch.ones(t, s + t, dtype=torch.bool).tril(),
                "causal offset is missing",
            ),
            (lambda t, s: mask(t, 0), "covers only the new tokens"),
            (lambda t, s: mask(t, s) & ~_diag(t, s), "own key"),
            (lambda t, s: ~mask(t, s) | _diag(t, s), "wrong way round"),
        ],
    ),
    (
        lab3.naive_mode_values_per_token,
        naive_mode,
        [
            (
                lambda c, d: naive_mode(c, d) - c.n_head * resolve(c, d).qk_rope_head_dim,
                "leaves out the rotary part",
            ),
            (
                lambda c, d: naive_mode(c, d) - (c.n_head - 1) * resolve(c, d).qk_rope_head_dim,
                "caches the rotary key once",
            ),
            (lambda c, d: naive_mode(c, d) + values(c, d), "keeps the latent too"),
            (
                lambda c, d: naive_mode(c, d) - c.n_head * resolve(c, d).v_head_dim,
                "counts only the keys",
            ),
            (
                lambda c, d: 2 * (naive_mode(c, d) - c.n_head * resolve(c, d).v_head_dim),
                "values are d_v wide",
            ),
        ],
    ),
]


def _diag(t, start_pos):
    """The diagonal j = start_pos + i, which 'later keys only' (j >= position) includes."""
    i = torch.arange(t)[:, None]
    j = torch.arange(start_pos + t)[None, :]
    return j == start_pos + i


@pytest.mark.parametrize(
    ("check", "right", "wrongs"), LAB3, ids=lambda x: getattr(x, "__name__", "")
)
def test_lab3_checks_accept_the_formula_and_name_each_mistake(
    check, right, wrongs, grades, one_percent_off
):
    if check is lab3.causal_mask:  # a boolean answer: flip one entry instead
        flipped = lambda t, s: (  # noqa: E731
            mask(t, s).flatten().logical_xor(torch.arange((s + t) * t) == 0).view(t, -1)
        )
        grades(check, right, wrongs, flipped, says="entries differ")
    else:
        grades(check, right, wrongs, one_percent_off(right))


def test_the_checks_count_deepseek_v3_as_the_lab_does():
    d = lab3.v3.CONFIG.dim
    assert values(lab3.V3_MLA, d) == 576
    assert values(lab3.V3_MHA, d) == 32_768
    assert naive_mode(lab3.V3_MLA, d) == 40_960


def test_the_score_reference_is_the_module_s_naive_attention():
    """Softmax of the reference scores, applied to the up-projected values, is the module's
    attend_naive output: the reference is what the layer computes."""
    torch.manual_seed(0)
    m = lab3._mla_module(n_h=2, d_model=16, d_c=16, d_nope=8, d_v=8, d_R=4)
    B, S = 1, 5
    q_C, q_R = torch.randn(B, S, 2, 8), torch.randn(B, S, 2, 4)
    c_KV, k_R = torch.randn(B, S, 16), torch.randn(B, S, 4)
    with torch.no_grad():
        want = m.attend_naive(q_C, q_R, c_KV, k_R, start_pos=0)
        s = lab3._naive_scores(q_C, q_R, c_KV, k_R, m.W_UK.weight)
        s = s.masked_fill(~lab3._mask(S, 0), float("-inf"))
        v_C = m.W_UV(c_KV).view(B, S, 2, 8).transpose(1, 2)
        got = (s.softmax(-1) @ v_C).transpose(1, 2)
    torch.testing.assert_close(got, want)
