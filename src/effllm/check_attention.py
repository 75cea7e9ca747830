"""Lab 3's checks: the KV-cache size formula, MLA's compression and up-projection, the absorbed
attention score, the causal mask with a cache offset, and a build exercise (the cache of the
naive mode of DeepSeek-V3's reference code).

Each function takes the student's function, checks it against :mod:`effllm.attention` with
:func:`effllm.checks.verify` on small seeded inputs, and returns the function the lab goes on
with. Weight matrices are laid out as ``nn.Linear`` stores them, (out_features, in_features), as
in :class:`effllm.attention.MultiHeadLatentAttention`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from effllm import attention
from effllm import deepseek_v3 as v3
from effllm.attention import AttentionConfig, MultiHeadLatentAttention, resolve
from effllm.checks import Case, Mistake, verify

V3_MLA = v3.mla()
V3_MHA = v3.same_shape_mha()
V3_GQA8 = AttentionConfig(
    "gqa", n_head=v3.CONFIG.n_heads, head_dim=v3.CONFIG.qk_nope_head_dim, n_kv_groups=8
)


def _configs(seed: int) -> list[Case]:
    """Random configurations of every kind (with d_model), and DeepSeek-V3's shapes."""
    g = torch.Generator().manual_seed(seed)

    def pick(*options: int) -> int:
        return options[int(torch.randint(len(options), (1,), generator=g))]

    cases = []
    for kind in ("mha", "gqa", "mqa", "mla", "gqa", "mla"):
        n_head, d_h = pick(4, 8, 12, 16, 32), pick(16, 32, 64, 128)
        d_model = n_head * d_h
        if kind == "gqa":
            groups = pick(*[k for k in (2, 4) if n_head % k == 0])
            cfg = AttentionConfig("gqa", n_head, n_kv_groups=groups)
        elif kind == "mla":
            cfg = AttentionConfig(
                "mla",
                n_head,
                kv_lora_rank=pick(64, 128, 256, 512),
                q_lora_rank=pick(96, 192, 384),
                qk_rope_head_dim=pick(8, 16, 32),
                v_head_dim=pick(16, 32, 64),
            )
        else:
            cfg = AttentionConfig(kind, n_head)
        cases.append(Case((cfg, d_model), f"{kind.upper()} with {n_head} heads of {d_h}"))
    return [
        *cases,
        Case((V3_MLA, v3.CONFIG.dim), "DeepSeek-V3's MLA"),
        Case((V3_MHA, v3.CONFIG.dim), "an MHA model of V3's shape"),
        Case((V3_GQA8, v3.CONFIG.dim), "a GQA model of V3's shape with 8 groups"),
    ]


def _right_values(cfg: AttentionConfig, d_model: int) -> int:
    r = resolve(cfg, d_model)
    return (
        r.kv_lora_rank + r.qk_rope_head_dim if r.kind == "mla" else 2 * r.n_kv_groups * r.head_dim
    )


def _unless_mla(wrong: Callable[[AttentionConfig], int]) -> Callable[[AttentionConfig, int], int]:
    """A mistake in the MHA/GQA/MQA count that gets MLA right."""
    return lambda cfg, d: _right_values(cfg, d) if cfg.kind == "mla" else wrong(resolve(cfg, d))


def _only_mla(wrong: Callable[[AttentionConfig], int]) -> Callable[[AttentionConfig, int], int]:
    """A mistake in the MLA count that gets the other kinds right."""
    return lambda cfg, d: wrong(resolve(cfg, d)) if cfg.kind == "mla" else _right_values(cfg, d)


def kv_values_per_token(
    student: Callable[[AttentionConfig, int], int],
) -> Callable[[AttentionConfig, int], int]:
    """Numbers per token per layer: 2 n_kv d_h (MHA, GQA, MQA), d_c + d_h^R (MLA)."""
    return verify(
        "kv_values_per_token",
        student,
        attention.kv_cache_values_per_token,
        _configs(0),
        [
            Mistake(
                _unless_mla(lambda r: r.n_kv_groups * r.head_dim),
                "it counts only the keys: every kv head caches a key *and* a value, "
                "2 n_kv d_h numbers",
            ),
            Mistake(
                _unless_mla(lambda r: 2 * r.n_head * r.head_dim),
                "it counts a key and a value for every *query* head; GQA and MQA cache one per "
                "kv group (n_kv_groups), which the query heads of the group share",
            ),
            Mistake(
                _only_mla(lambda r: r.kv_lora_rank + r.qk_rope_head_dim + (r.q_lora_rank or 0)),
                "it counts MLA's query latent c^Q (q_lora_rank): queries are used at once and "
                "never cached, only c^KV and k^R are",
            ),
            Mistake(
                _only_mla(lambda r: r.kv_lora_rank),
                "it forgets MLA's decoupled rotary key k^R: d_c + d_h^R numbers "
                "(kv_lora_rank + qk_rope_head_dim)",
            ),
            Mistake(
                _only_mla(lambda r: 2 * r.n_head * r.qk_nope_head_dim),
                "for MLA it counts the keys and values an MHA model of the same shape would "
                "cache; MLA caches the latent c^KV and the rotary key, d_c + d_h^R numbers",
            ),
            Mistake(
                lambda cfg, d: 2 * _right_values(cfg, d),
                "it returns bytes at 2 bytes a number (BF16), not numbers; leave the data type "
                "to kv_bytes_per_token",
            ),
            Mistake(
                lambda cfg, d: 4 * _right_values(cfg, d),
                "it returns bytes at 4 bytes a number (float32), not numbers; leave the data "
                "type to kv_bytes_per_token",
            ),
        ],
        stand_in="attention.kv_cache_values_per_token",
    )


def _dtype_cases(seed: int) -> list[Case]:
    dtypes = (torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn)
    return [
        Case((*c.args, dtypes[i % len(dtypes)]), f"{c.label} in {dtypes[i % len(dtypes)]}")
        for i, c in enumerate(_configs(seed))
    ]


def kv_bytes_per_token(
    student: Callable[[AttentionConfig, int, torch.dtype], int],
) -> Callable[[AttentionConfig, int, torch.dtype], int]:
    """Bytes per token per layer: the numbers times the bytes of one number of ``dtype``."""

    def size(dtype: torch.dtype) -> int:
        return torch.empty((), dtype=dtype).element_size()

    return verify(
        "kv_bytes_per_token",
        student,
        attention.kv_cache_bytes_per_token,
        _dtype_cases(1),
        [
            Mistake(
                lambda cfg, d, t: _right_values(cfg, d),
                "it returns numbers, not bytes: multiply by the bytes of one number of the "
                "data type (dtype.itemsize: 4 for float32, 2 for BF16, 1 for FP8)",
            ),
            Mistake(
                lambda cfg, d, t: 4 * _right_values(cfg, d),
                "it assumes 4 bytes a number (float32) whatever the data type; use dtype.itemsize",
            ),
            Mistake(
                lambda cfg, d, t: 2 * _right_values(cfg, d),
                "it assumes 2 bytes a number (BF16) whatever the data type; use dtype.itemsize",
            ),
            Mistake(
                lambda cfg, d, t: 8 * size(t) * _right_values(cfg, d),
                "it returns bits, not bytes: a byte is 8 bits",
            ),
        ],
        stand_in="attention.kv_cache_bytes_per_token",
    )


# --- MLA's latent: compression and up-projection ------------------------------------------------


def _mla_module(
    n_h: int, d_model: int, d_c: int, d_nope: int, d_v: int, d_R: int = 2
) -> MultiHeadLatentAttention:
    cfg = AttentionConfig(
        "mla",
        n_head=n_h,
        head_dim=d_nope,
        kv_lora_rank=d_c,
        qk_nope_head_dim=d_nope,
        qk_rope_head_dim=d_R,
        v_head_dim=d_v,
    )
    return MultiHeadLatentAttention(d_model, 1, cfg)


@torch.no_grad()
def _keys_values(
    h: torch.Tensor,
    W_DKV: torch.Tensor,
    g: torch.Tensor,
    W_UK: torch.Tensor,
    W_UV: torch.Tensor,
    n_h: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What MultiHeadLatentAttention computes from h with these weights: (c_KV, k_C, v_C)."""
    B, T, d_model = h.shape
    d_c = W_DKV.shape[0]
    m = _mla_module(n_h, d_model, d_c, W_UK.shape[0] // n_h, W_UV.shape[0] // n_h)
    m.W_DKV.weight.copy_(W_DKV)
    m.kv_norm.weight.copy_(g)
    m.W_UK.weight.copy_(W_UK)
    m.W_UV.weight.copy_(W_UV)
    c_KV = m.kv_norm(m.W_DKV(h))
    return c_KV, m.W_UK(c_KV).view(B, T, n_h, -1), m.W_UV(c_KV).view(B, T, n_h, -1)


def _rms(x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    return y if g is None else y * g


def _latent_cases(seed: int) -> list[Case]:
    """Seeded inputs with d_model = d_c = n_h d_h: square weights, so that a transposed weight or
    up-projecting h gives a wrong answer instead of a shape error."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for B, T, n_h, d_h in ((2, 5, 4, 8), (1, 7, 2, 12), (3, 4, 8, 4), (2, 3, 6, 8)):
        d = n_h * d_h
        h = torch.randn(B, T, d, generator=g)
        W_DKV, W_UK, W_UV = (torch.randn(d, d, generator=g) / d**0.5 for _ in range(3))
        gain = 1 + 0.5 * torch.rand(d, generator=g)
        cases.append(Case((h, W_DKV, gain, W_UK, W_UV, n_h), f"{n_h} heads of {d_h}, d_c = {d}"))
    return cases


def mla_keys_values(
    student: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """c^KV = RMSNorm(W^DKV h); k^C_i = W^UK_i c^KV and v^C_i = W^UV_i c^KV for each head i."""

    def heads(x: torch.Tensor, n_h: int) -> torch.Tensor:
        return x.view(*x.shape[:-1], n_h, -1)

    def up(c: torch.Tensor, W_UK: torch.Tensor, W_UV: torch.Tensor, n_h: int) -> tuple:
        return heads(c @ W_UK.T, n_h), heads(c @ W_UV.T, n_h)

    def mixed(x: torch.Tensor, n_h: int) -> torch.Tensor:
        return x.view(*x.shape[:-1], -1, n_h).transpose(-1, -2)

    return verify(
        "mla_keys_values",
        student,
        _keys_values,
        _latent_cases(2),
        [
            Mistake(
                lambda h, D, g, K, V, n: (c := _rms(h @ D.T, g), heads(c @ K, n), heads(c @ V, n)),
                "the up-projections use transposed weights: nn.Linear stores W^UK and W^UV as "
                "(out, in) = (n_h d_h, d_c), so k^C = c^KV W^UK^T (c_KV @ W_UK.T)",
            ),
            Mistake(
                lambda h, D, g, K, V, n: (_rms(h @ D, g), *up(_rms(h @ D, g), K, V, n)),
                "the down-projection uses a transposed weight: W^DKV is stored as (d_c, d_model), "
                "so c^KV = h W^DKV^T (h @ W_DKV.T)",
            ),
            Mistake(
                lambda h, D, g, K, V, n: (_rms(h @ D.T, g), *up(h, K, V, n)),
                "it up-projects the input h; keys and values are rebuilt from the latent "
                "c^KV, which is all the cache keeps",
            ),
            Mistake(
                lambda h, D, g, K, V, n: (h @ D.T, *up(h @ D.T, K, V, n)),
                "c^KV is not normalised: the module RMS-normalises the latent (with its gain "
                "kv_norm.weight) before caching it and up-projecting it",
            ),
            Mistake(
                lambda h, D, g, K, V, n: (_rms(h @ D.T), *up(_rms(h @ D.T), K, V, n)),
                "the RMS normalisation leaves out its gain: multiply the normalised latent by "
                "kv_norm.weight, elementwise",
            ),
            Mistake(
                lambda h, D, g, K, V, n: (
                    c := _rms(h @ D.T, g),
                    mixed(c @ K.T, n),
                    mixed(c @ V.T, n),
                ),
                "the heads are mixed up in the reshape: the n_h d_h outputs are n_h blocks of "
                "d_h, one head after the other, so view them as (..., n_h, d_h)",
            ),
        ],
        stand_in="MultiHeadLatentAttention layers (W_DKV, kv_norm, W_UK, W_UV)",
    )


# --- the absorbed score --------------------------------------------------------------------------


@torch.no_grad()
def _naive_scores(
    q_C: torch.Tensor,
    q_R: torch.Tensor,
    c_KV: torch.Tensor,
    k_R: torch.Tensor,
    W_UK: torch.Tensor,
) -> torch.Tensor:
    """The naive score with the module's W_UK and scale: up-project the keys, then dot."""
    B, T, n_h, d_nope = q_C.shape
    S, d_c, d_R = c_KV.shape[1], c_KV.shape[-1], k_R.shape[-1]
    m = _mla_module(n_h, d_c, d_c, d_nope, d_nope, d_R)
    m.W_UK.weight.copy_(W_UK)
    k_C = m.W_UK(c_KV).view(B, S, n_h, d_nope)
    q = torch.cat([q_C, q_R], dim=-1)
    k = torch.cat([k_C, k_R[:, :, None].expand(B, S, n_h, d_R)], dim=-1)
    return torch.einsum("bthd,bshd->bhts", q, k) * m.scale


def _score_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for B, T, S, n_h, d_nope, d_R, d_c in (
        (2, 3, 7, 4, 8, 4, 32),
        (1, 1, 9, 2, 16, 8, 24),
        (2, 4, 4, 8, 6, 2, 40),
        (1, 2, 6, 3, 10, 6, 12),
    ):
        q_C = torch.randn(B, T, n_h, d_nope, generator=g)
        q_R = torch.randn(B, T, n_h, d_R, generator=g)
        c_KV = torch.randn(B, S, d_c, generator=g)
        k_R = torch.randn(B, S, d_R, generator=g)
        W_UK = torch.randn(n_h * d_nope, d_c, generator=g) / d_c**0.5
        label = f"{n_h} heads, d_h = {d_nope}, d_h^R = {d_R}, d_c = {d_c}"
        cases.append(Case((q_C, q_R, c_KV, k_R, W_UK), label))
    return cases


def _scores(
    q_C: torch.Tensor,
    q_R: torch.Tensor,
    c_KV: torch.Tensor,
    k_R: torch.Tensor,
    W_UK: torch.Tensor,
    scale: float | None = None,
    rope: bool = True,
    layout: str = "hdc",
) -> torch.Tensor:
    """The absorbed score, with the knobs the mistakes turn."""
    n_h, d_nope = q_C.shape[2], q_C.shape[3]
    d_c, d_R = c_KV.shape[-1], k_R.shape[-1]
    if layout == "hdc":
        q_lat = torch.einsum("bthd,hdc->bthc", q_C, W_UK.view(n_h, d_nope, d_c))
    else:  # W_UK read as if stored (in, out) = (d_c, n_h d_h)
        q_lat = torch.einsum("bthd,chd->bthc", q_C, W_UK.reshape(d_c, n_h, d_nope))
    s = torch.einsum("bthc,bsc->bhts", q_lat, c_KV)
    if rope:
        s = s + torch.einsum("bthr,bsr->bhts", q_R, k_R)
    return s * (scale if scale is not None else (d_nope + d_R) ** -0.5)


def absorbed_scores(
    student: Callable[..., torch.Tensor],
) -> Callable[..., torch.Tensor]:
    """[(W^UK_i^T q^C_{t,i})^T c^KV_j + q^R_{t,i}^T k^R_j] / sqrt(d_h + d_h^R), per head."""
    return verify(
        "absorbed_scores",
        student,
        _naive_scores,
        _score_cases(3),
        [
            Mistake(
                lambda *a: _scores(*a, rope=False),
                "it leaves out the decoupled rotary part: add q^R_{t,i} · k^R_j, the "
                "position-carrying score, to the content score",
            ),
            Mistake(
                lambda *a: _scores(*a, scale=a[0].shape[-1] ** -0.5),
                "the scale is 1/sqrt(d_h); the query and key are [content; rotary], "
                "d_h + d_h^R wide, so scale by 1/sqrt(d_h + d_h^R)",
            ),
            Mistake(
                lambda *a: _scores(*a, scale=a[2].shape[-1] ** -0.5),
                "the scale is 1/sqrt(d_c); absorption changes where the product is computed, "
                "not its value, so keep the naive form's 1/sqrt(d_h + d_h^R)",
            ),
            Mistake(
                lambda *a: _scores(*a, scale=(a[2].shape[-1] + a[3].shape[-1]) ** -0.5),
                "the scale is 1/sqrt(d_c + d_h^R), the width of the absorbed key; the score "
                "must equal the naive one, scaled by 1/sqrt(d_h + d_h^R)",
            ),
            Mistake(
                lambda *a: _scores(*a, scale=1.0),
                "the scores are not scaled: divide by sqrt(d_h + d_h^R)",
            ),
            Mistake(
                lambda *a: _scores(*a, layout="chd"),
                "W^UK is absorbed without its transpose: nn.Linear stores W_UK as "
                "(n_h d_h, d_c), so head i's block is W_UK.view(n_h, d_h, d_c)[i] and the "
                "latent query is W^UK_i^T q^C_{t,i}",
            ),
        ],
        stand_in="naive MLA score (keys up-projected by W_UK, then dotted)",
    )


# --- the causal mask with a cache ---------------------------------------------------------------


def _mask(t: int, start_pos: int) -> torch.Tensor:
    m = attention.causal_mask(t, start_pos, torch.device("cpu"))
    return torch.ones(1, start_pos + 1, dtype=torch.bool) if m is None else m


def _positions(t: int, start_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(start_pos, start_pos + t)[:, None], torch.arange(start_pos + t)[None, :]


def causal_mask(student: Callable[[int, int], torch.Tensor]) -> Callable[[int, int], torch.Tensor]:
    """Boolean (t, start_pos + t): query i, at position start_pos + i, sees keys j <= it."""
    cases = [Case((t, s), f"{t} new tokens after {s} cached") for t, s in (
        (5, 0), (3, 4), (1, 6), (4, 9), (6, 2), (2, 1)
    )]  # fmt: skip
    return verify(
        "causal_mask",
        student,
        _mask,
        cases,
        [
            Mistake(
                lambda t, s: torch.ones(t, s + t, dtype=torch.bool).tril(),
                "the causal offset is missing: query i sits at position start_pos + i, so it "
                "sees all start_pos cached keys and the new ones up to itself (j <= start_pos + i)",
            ),
            Mistake(
                lambda t, s: torch.ones(t, t, dtype=torch.bool).tril(),
                "it covers only the new tokens: the keys are the start_pos cached ones and the "
                "t new ones, so the mask is (t, start_pos + t)",
            ),
            Mistake(
                lambda t, s: _positions(t, s)[1] < _positions(t, s)[0],
                "a query must see its own key too: j <= start_pos + i, not <",
            ),
            Mistake(
                lambda t, s: _positions(t, s)[1] >= _positions(t, s)[0],
                "it is the wrong way round: it lets a query see later keys and hides the "
                "earlier ones; True must mean j <= start_pos + i",
            ),
        ],
        stand_in="attention.causal_mask",
    )


# --- build exercise ------------------------------------------------------------------------------


def _naive_mode_values(cfg: AttentionConfig, d_model: int) -> int:
    """n_h (d_h + d_h^R + d_v): full per-head keys (with the rotary part) and values."""
    r = resolve(cfg, d_model)
    return r.n_head * (r.qk_nope_head_dim + r.qk_rope_head_dim + r.v_head_dim)


def naive_mode_values_per_token(
    student: Callable[[AttentionConfig, int], int],
) -> Callable[[AttentionConfig, int], int]:
    """Numbers per token per layer cached by the naive mode of V3's reference code:
    n_h (d_h + d_h^R + d_v)."""
    mla = [c for c in _configs(4) if c.args[0].kind == "mla"]
    extra = [c for c in _configs(5) if c.args[0].kind == "mla"]

    def dims(cfg: AttentionConfig, d: int) -> tuple[int, int, int, int, int]:
        r = resolve(cfg, d)
        return r.n_head, r.qk_nope_head_dim, r.qk_rope_head_dim, r.v_head_dim, r.kv_lora_rank

    def wrong(f: Callable[..., int]) -> Callable[[AttentionConfig, int], int]:
        return lambda cfg, d: f(*dims(cfg, d))

    return verify(
        "naive_mode_values_per_token",
        student,
        _naive_mode_values,
        [*mla, *extra],
        [
            Mistake(
                wrong(lambda n, k, r, v, c: n * (k + v)),
                "it leaves out the rotary part of the keys: each cached key is [k^C; k^R], "
                "d_h + d_h^R wide, so n_h (d_h + d_h^R + d_v)",
            ),
            Mistake(
                wrong(lambda n, k, r, v, c: n * (k + v) + r),
                "it caches the rotary key once, shared; in the naive mode each head's key is "
                "cached whole, [k^C_i; k^R], so the rotary part counts n_h times",
            ),
            Mistake(
                wrong(lambda n, k, r, v, c: n * (k + r + v) + c + r),
                "it keeps the latent too; the naive mode caches only the full per-head keys "
                "and values, not c^KV and k^R",
            ),
            Mistake(
                wrong(lambda n, k, r, v, c: n * (k + r)),
                "it counts only the keys: the values, n_h d_v numbers, are cached too",
            ),
            Mistake(
                wrong(lambda n, k, r, v, c: 2 * n * (k + r)),
                "the values are d_v wide, not d_h + d_h^R: only keys carry the rotary part",
            ),
        ],
        stand_in="count of V3's naive mode, n_h (d_h + d_h^R + d_v)",
    )
