"""Causal self-attention behind one interface, so the transformer can swap variants by name.

Every variant is built by :func:`build_attention` from an :class:`AttentionConfig` and has the
same call: ``attn(x, start_pos, cache) -> y`` with ``x, y: (batch, seq, d_model)``. With a
:class:`~effllm.kv_cache.LayerCache`, the layer appends what it needs for the new positions and
attends over everything cached; each variant chooses what to cache:

- ``mha``, ``gqa``, ``mqa``: keys and values of ``n_kv_groups`` heads (``n_head``, a divisor of
  ``n_head``, or one), shared by the query heads of each group.
- ``mla``: multi-head latent attention (DeepSeek-V2 §2.1): one latent vector ``c_KV`` and one
  small rotary key ``k_R`` per token, shared by all heads. Its two forms, naive and absorbed,
  cache the same latent and differ only in arithmetic (see :class:`MultiHeadLatentAttention`).

:func:`kv_cache_bytes_per_token` gives, from a configuration alone, the bytes one token adds to
one layer's cache; it serves the labs' toy models and DeepSeek-V3's configuration alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from effllm.kv_cache import LayerCache
from effllm.layers import RMSNorm, RotaryEmbedding
from effllm.validate import positive_int

ATTENTION_KINDS = ("mha", "gqa", "mqa", "mla")
_MLA_FIELDS = ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


@dataclass
class AttentionConfig:
    """Which attention to use and its shape. ``kind`` is one of ``ATTENTION_KINDS``.

    Sizes left at None are filled in by :func:`resolve` for a given ``d_model``.

    Attributes:
        head_dim: width of each head, d_h (default ``d_model // n_head``).
        n_kv_groups: key-value heads for ``gqa`` (required there; ``mha`` has ``n_head``,
            ``mqa`` one). ``n_head`` must be divisible by it.
        kv_lora_rank: MLA's latent width d_c, the size of ``c_KV`` (required for ``mla``).
        q_lora_rank: MLA's query latent width d_c'; None leaves queries uncompressed.
        qk_nope_head_dim: MLA's per-head query/key width without position (default d_h).
        qk_rope_head_dim: MLA's decoupled rotary width d_h^R (default d_h // 2, as in V2).
        v_head_dim: MLA's per-head value width (default d_h).
        mla_absorb: attend in latent space with W_UK and W_UV folded into the query and output
            (the absorbed form) instead of decompressing keys and values from the cached
            latents at every step (the naive form). Both forms cache only ``c_KV`` and ``k_R``;
            this is not the switch ``attn_impl`` of DeepSeek-V3's reference code, whose
            "naive" mode caches full per-head keys and values instead.
    """

    kind: str = "mha"
    n_head: int = 4
    rope_theta: float = 10000.0
    head_dim: int | None = None
    n_kv_groups: int | None = None
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    mla_absorb: bool = False


def resolve(cfg: AttentionConfig, d_model: int) -> AttentionConfig:
    """A copy of ``cfg`` with every size filled in for ``d_model``, or a ValueError naming the
    value that does not fit (a head count not divisible by the group count, a latent rank of
    zero, a size set for a kind that does not use it)."""
    if cfg.kind not in ATTENTION_KINDS:
        raise ValueError(f"unknown attention kind {cfg.kind!r}; choose one of {ATTENTION_KINDS}")
    n_head = positive_int("n_head", cfg.n_head)
    if cfg.head_dim is None and d_model % n_head:
        raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}")
    head_dim = positive_int("head_dim", cfg.head_dim or d_model // n_head)
    if cfg.kind == "mla":
        return _resolve_mla(cfg, head_dim)
    unused = [f for f in (*_MLA_FIELDS, "mla_absorb") if getattr(cfg, f) not in (None, False)]
    if unused:
        raise ValueError(f"{unused} only apply to kind='mla', not {cfg.kind!r}")
    groups = {"mha": n_head, "mqa": 1, "gqa": cfg.n_kv_groups}[cfg.kind]
    if cfg.n_kv_groups is not None and cfg.n_kv_groups != groups:
        raise ValueError(f"{cfg.kind} has {groups} kv groups, not n_kv_groups={cfg.n_kv_groups}")
    groups = positive_int("n_kv_groups", groups)
    if n_head % groups:
        raise ValueError(f"n_head={n_head} is not divisible by n_kv_groups={groups}")
    return dataclasses.replace(cfg, head_dim=head_dim, n_kv_groups=groups)


def _resolve_mla(cfg: AttentionConfig, head_dim: int) -> AttentionConfig:
    if cfg.n_kv_groups is not None:
        raise ValueError(f"MLA has no kv groups; got n_kv_groups={cfg.n_kv_groups}")
    if cfg.kv_lora_rank is None or cfg.kv_lora_rank <= 0:
        raise ValueError(f"MLA needs a latent rank kv_lora_rank > 0, got {cfg.kv_lora_rank!r}")
    if cfg.q_lora_rank is not None:
        positive_int("q_lora_rank (None for uncompressed queries)", cfg.q_lora_rank)
    rope_dim = cfg.qk_rope_head_dim if cfg.qk_rope_head_dim is not None else head_dim // 2
    if rope_dim <= 0 or rope_dim % 2:
        raise ValueError(f"qk_rope_head_dim must be positive and even, got {rope_dim}")
    return dataclasses.replace(
        cfg,
        head_dim=head_dim,
        qk_nope_head_dim=positive_int("qk_nope_head_dim", cfg.qk_nope_head_dim or head_dim),
        qk_rope_head_dim=rope_dim,
        v_head_dim=positive_int("v_head_dim", cfg.v_head_dim or head_dim),
    )


def kv_cache_values_per_token(cfg: AttentionConfig, d_model: int) -> int:
    """Numbers one token adds to one layer's cache (Table 1 of the DeepSeek-V2 report).

    MHA, GQA, MQA: a key and a value per kv group, ``2 * n_kv_groups * head_dim``.
    MLA: the latent and the shared rotary key, ``kv_lora_rank + qk_rope_head_dim``.
    """
    r = resolve(cfg, d_model)
    if r.kind == "mla":
        return r.kv_lora_rank + r.qk_rope_head_dim
    return 2 * r.n_kv_groups * r.head_dim


def kv_cache_bytes_per_token(
    cfg: AttentionConfig, d_model: int, dtype: torch.dtype = torch.float32
) -> int:
    """Bytes one token adds to one layer's cache when it is stored as ``dtype``."""
    return kv_cache_values_per_token(cfg, d_model) * torch.empty((), dtype=dtype).element_size()


def causal_mask(t: int, start_pos: int, device: torch.device) -> torch.Tensor | None:
    """Boolean mask (t, start_pos + t): query i (at position start_pos + i) sees keys <= it.

    Returns None when no mask is needed (a single new token sees everything cached).
    """
    if t == 1:
        return None
    q_pos = torch.arange(start_pos, start_pos + t, device=device)[:, None]
    k_pos = torch.arange(start_pos + t, device=device)[None, :]
    return k_pos <= q_pos


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    start_pos: int,
    scale: float | None = None,
) -> torch.Tensor:
    """Causal scaled dot-product attention, with fewer key-value heads than query heads allowed.

    q: (batch, heads, t, d_k); k: (batch, groups, s, d_k); v: (batch, groups, s, d_v) with
    s = start_pos + t and ``groups`` dividing ``heads``: query head h reads group
    h // (heads / groups). ``scale`` defaults to 1 / sqrt(d_k). Returns (batch, heads, t, d_v).
    """
    B, H, T, _ = q.shape
    G = k.shape[1]
    if H % G:
        raise ValueError(f"{H} query heads cannot share {G} key-value heads")
    rep = H // G
    if rep == 1:
        if start_pos == 0:
            return F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, scale=scale)
        mask = causal_mask(T, start_pos, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    # Fold the heads of a group into the query axis, so shared keys are read once, never copied.
    q = q.reshape(B, G, rep, T, -1).transpose(2, 3).reshape(B, G, T * rep, -1)
    mask = causal_mask(T, start_pos, q.device)
    if mask is not None:
        mask = mask.repeat_interleave(rep, dim=0)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return y.reshape(B, G, T, rep, -1).transpose(2, 3).reshape(B, H, T, -1)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with RoPE and ``n_kv_groups`` key-value heads.

    ``n_kv_groups == n_head`` is standard multi-head attention (MHA), a divisor of it grouped-query
    attention (GQA), one multi-query attention (MQA). The cache holds ``k`` and ``v``:
    (batch, seq, n_kv_groups, head_dim) each.
    """

    def __init__(self, d_model: int, max_len: int, cfg: AttentionConfig) -> None:
        super().__init__()
        cfg = resolve(cfg, d_model)
        self.n_head, self.n_kv, self.head_dim = cfg.n_head, cfg.n_kv_groups, cfg.head_dim
        self.wq = nn.Linear(d_model, self.n_head * self.head_dim, bias=False)
        self.wk = nn.Linear(d_model, self.n_kv * self.head_dim, bias=False)
        self.wv = nn.Linear(d_model, self.n_kv * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_head * self.head_dim, d_model, bias=False)
        self.rope = RotaryEmbedding(self.head_dim, max_len, cfg.rope_theta)

    def forward(
        self, x: torch.Tensor, start_pos: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model)"""
        B, T, _ = x.shape
        q = self.rope(self.wq(x).view(B, T, self.n_head, self.head_dim), start_pos)
        k = self.rope(self.wk(x).view(B, T, self.n_kv, self.head_dim), start_pos)
        v = self.wv(x).view(B, T, self.n_kv, self.head_dim)
        if cache is not None:
            k, v = cache.update(k=k, v=v)
        y = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), start_pos)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class MultiHeadLatentAttention(nn.Module):
    """Multi-head latent attention (MLA), DeepSeek-V2 §2.1, as in DeepSeek-V3.

    Names follow the paper (h_t is the input x at position t):

    - keys and values: c_KV = W_DKV h (the latent, width d_c); k_C = W_UK c_KV and
      v_C = W_UV c_KV per head;
    - queries: c_Q = W_DQ h (width d_c', or h itself without query compression); q_C = W_UQ c_Q;
    - decoupled RoPE: q_R = RoPE(W_QR c_Q) per head and k_R = RoPE(W_KR h), one key of width
      d_h^R shared by all heads; a head attends with [q_C; q_R] against [k_C; k_R].

    Only c_KV and k_R are cached: (batch, seq, d_c) and (batch, seq, d_h^R). As in the reference
    implementation, the latents c_KV and c_Q are RMS-normalised, and c_KV is cached normalised.

    Two forms compute the same output from that same cache (``cfg.mla_absorb`` picks one):
    :meth:`attend_naive` rebuilds k_C and v_C for every cached position at every step, and
    :meth:`attend_absorbed` folds W_UK and W_UV into the query and output. Comparing them times
    recomputation against absorption at equal memory. DeepSeek-V3's reference inference code
    (``inference/model.py``) also has a naive mode, ``attn_impl = "naive"``, but a different
    one: it decompresses each token once, on arrival, and caches full per-head keys and values,
    n_h (d_h + d_h^R + d_v) numbers per token and layer, so its naive and absorbed modes trade
    memory against arithmetic. This class has no such mode.
    """

    def __init__(self, d_model: int, max_len: int, cfg: AttentionConfig) -> None:
        super().__init__()
        cfg = resolve(cfg, d_model)
        self.n_head, self.d_c = cfg.n_head, cfg.kv_lora_rank
        self.d_nope, self.d_R, self.d_v = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        self.absorb = cfg.mla_absorb
        H = self.n_head
        if cfg.q_lora_rank is None:  # queries straight from h, as in DeepSeek-V2-Lite
            self.W_DQ, self.q_norm, d_q = nn.Identity(), nn.Identity(), d_model
        else:
            self.W_DQ = nn.Linear(d_model, cfg.q_lora_rank, bias=False)
            self.q_norm, d_q = RMSNorm(cfg.q_lora_rank), cfg.q_lora_rank
        self.W_UQ = nn.Linear(d_q, H * self.d_nope, bias=False)
        self.W_QR = nn.Linear(d_q, H * self.d_R, bias=False)
        self.W_DKV = nn.Linear(d_model, self.d_c, bias=False)
        self.kv_norm = RMSNorm(self.d_c)
        self.W_UK = nn.Linear(self.d_c, H * self.d_nope, bias=False)
        self.W_UV = nn.Linear(self.d_c, H * self.d_v, bias=False)
        self.W_KR = nn.Linear(d_model, self.d_R, bias=False)
        self.W_O = nn.Linear(H * self.d_v, d_model, bias=False)
        self.rope = RotaryEmbedding(self.d_R, max_len, cfg.rope_theta)
        self.scale = (self.d_nope + self.d_R) ** -0.5  # 1 / sqrt(d_h + d_h^R), both forms

    def forward(
        self, x: torch.Tensor, start_pos: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model)"""
        B, T, _ = x.shape
        c_Q = self.q_norm(self.W_DQ(x))
        q_C = self.W_UQ(c_Q).view(B, T, self.n_head, self.d_nope)
        q_R = self.rope(self.W_QR(c_Q).view(B, T, self.n_head, self.d_R), start_pos)
        c_KV = self.kv_norm(self.W_DKV(x))  # (B, T, d_c): no position in it
        k_R = self.rope(self.W_KR(x).view(B, T, 1, self.d_R), start_pos)[:, :, 0]  # (B, T, d_R)
        if cache is not None:
            c_KV, k_R = cache.update(c_KV=c_KV, k_R=k_R)
        attn = self.attend_absorbed if self.absorb else self.attend_naive
        o = attn(q_C, q_R, c_KV, k_R, start_pos)
        return self.W_O(o.reshape(B, T, -1))

    def attend_naive(
        self,
        q_C: torch.Tensor,
        q_R: torch.Tensor,
        c_KV: torch.Tensor,
        k_R: torch.Tensor,
        start_pos: int,
    ) -> torch.Tensor:
        """Decompress every cached position's keys and values, then attend head by head.

        The keys and values are rebuilt from the latent cache at every call and never kept, so
        each decoding step costs about S d_c n_h (d_h + d_v) multiply-adds for S cached tokens.
        q_C: (B, T, H, d_nope); q_R: (B, T, H, d_R); c_KV: (B, S, d_c); k_R: (B, S, d_R).
        Returns o: (B, T, H, d_v).
        """
        B, S, H = c_KV.shape[0], c_KV.shape[1], self.n_head
        k_C = self.W_UK(c_KV).view(B, S, H, self.d_nope)
        v_C = self.W_UV(c_KV).view(B, S, H, self.d_v)
        q = torch.cat([q_C, q_R], dim=-1)
        k = torch.cat([k_C, k_R[:, :, None].expand(B, S, H, self.d_R)], dim=-1)
        o = attend(q.transpose(1, 2), k.transpose(1, 2), v_C.transpose(1, 2), start_pos, self.scale)
        return o.transpose(1, 2)

    def attend_absorbed(
        self,
        q_C: torch.Tensor,
        q_R: torch.Tensor,
        c_KV: torch.Tensor,
        k_R: torch.Tensor,
        start_pos: int,
    ) -> torch.Tensor:
        """Attend in latent space; shapes as :meth:`attend_naive`.

        q_C^T k_C = q_C^T (W_UK c_KV) = (W_UK^T q_C)^T c_KV, so each head's query is mapped into
        the latent once and compared with c_KV directly; likewise W_UV is applied after the
        weighted sum of latents, not to every cached position. What remains is one key-value
        "head" [c_KV; k_R] / c_KV shared by all query heads: multi-query attention over the cache.
        """
        H = self.n_head
        W_UK = self.W_UK.weight.view(H, self.d_nope, self.d_c)
        W_UV = self.W_UV.weight.view(H, self.d_v, self.d_c)
        q_lat = torch.einsum("bthd,hdc->bthc", q_C, W_UK)  # W_UK folded into the query
        q = torch.cat([q_lat, q_R], dim=-1).transpose(1, 2)  # (B, H, T, d_c + d_R)
        k = torch.cat([c_KV, k_R], dim=-1)[:, None]  # (B, 1, S, d_c + d_R)
        o_lat = attend(q, k, c_KV[:, None], start_pos, self.scale)  # (B, H, T, d_c)
        return torch.einsum("bhtc,hdc->bthd", o_lat, W_UV)  # W_UV folded into the output


def build_attention(d_model: int, max_len: int, cfg: AttentionConfig) -> nn.Module:
    """The attention module named by ``cfg.kind``."""
    if resolve(cfg, d_model).kind == "mla":
        return MultiHeadLatentAttention(d_model, max_len, cfg)
    return MultiHeadAttention(d_model, max_len, cfg)
