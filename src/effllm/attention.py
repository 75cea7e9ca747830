"""Causal self-attention behind one interface, so the transformer can swap variants by name.

Every variant is built by :func:`build_attention` from an :class:`AttentionConfig` and has the
same call: ``attn(x, start_pos, cache) -> y`` with ``x, y: (batch, seq, d_model)``. With a
:class:`~effllm.kv_cache.LayerCache`, the layer appends what it needs for the new positions and
attends over everything cached; each variant chooses what to cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from effllm.kv_cache import LayerCache
from effllm.layers import RotaryEmbedding

ATTENTION_KINDS = ("mha",)


@dataclass
class AttentionConfig:
    """Which attention to use and its shape. ``kind`` is one of ``ATTENTION_KINDS``."""

    kind: str = "mha"
    n_head: int = 4
    rope_theta: float = 10000.0


def causal_mask(t: int, start_pos: int, device: torch.device) -> torch.Tensor | None:
    """Boolean mask (t, start_pos + t): query i (at position start_pos + i) sees keys <= it.

    Returns None when no mask is needed (a single new token sees everything cached).
    """
    if t == 1:
        return None
    q_pos = torch.arange(start_pos, start_pos + t, device=device)[:, None]
    k_pos = torch.arange(start_pos + t, device=device)[None, :]
    return k_pos <= q_pos


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start_pos: int) -> torch.Tensor:
    """Causal scaled dot-product attention.

    q: (batch, heads, t, d_k); k: (batch, heads, s, d_k); v: (batch, heads, s, d_v) with
    s = start_pos + t. Returns (batch, heads, t, d_v).
    """
    t = q.shape[2]
    if start_pos == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(t, start_pos, q.device))


class MultiHeadAttention(nn.Module):
    """Standard multi-head attention with RoPE; caches full keys and values for every head."""

    def __init__(self, d_model: int, max_len: int, cfg: AttentionConfig) -> None:
        super().__init__()
        if cfg.n_head <= 0 or d_model % cfg.n_head:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={cfg.n_head}")
        self.n_head = cfg.n_head
        self.head_dim = d_model // cfg.n_head
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)
        self.rope = RotaryEmbedding(self.head_dim, max_len, cfg.rope_theta)

    def forward(
        self, x: torch.Tensor, start_pos: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model)"""
        B, T, _ = x.shape
        q = self.rope(self.wq(x).view(B, T, self.n_head, self.head_dim), start_pos)
        k = self.rope(self.wk(x).view(B, T, self.n_head, self.head_dim), start_pos)
        v = self.wv(x).view(B, T, self.n_head, self.head_dim)
        if cache is not None:
            k, v = cache.update(k=k, v=v)
        y = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), start_pos)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


def build_attention(d_model: int, max_len: int, cfg: AttentionConfig) -> nn.Module:
    """The attention module named by ``cfg.kind``."""
    if cfg.kind == "mha":
        return MultiHeadAttention(d_model, max_len, cfg)
    raise ValueError(f"unknown attention kind {cfg.kind!r}; choose one of {ATTENTION_KINDS}")
