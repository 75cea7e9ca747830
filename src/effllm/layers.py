"""Small building blocks shared by every model in the course: RMSNorm, rotary embeddings and
the SwiGLU feed-forward network (which is also what each expert of a mixture of experts is)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (no mean subtraction, no bias), as in DeepSeek-V3 and LLaMA."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., dim) -> (..., dim)"""
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) tables for ``dim`` channels and ``max_len`` positions.

    RoPE rotates each pair of channels of a query or key by an angle proportional to the token's
    position, so that the dot product of a query and a key depends on their distance.
    """

    def __init__(self, dim: int, max_len: int, theta: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary dimension must be even, got {dim}")
        inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)  # (max_len, dim/2)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        """Rotate x: (batch, seq, heads, dim) whose first token is at position ``start_pos``."""
        T = x.shape[1]
        if start_pos + T > self.cos.shape[0]:
            raise ValueError(
                f"positions up to {start_pos + T} exceed the model's context of {self.cos.shape[0]}"
            )
        cos = self.cos[start_pos : start_pos + T, None, :].to(x.dtype)
        sin = self.sin[start_pos : start_pos + T, None, :].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return out.flatten(-2)


class FeedForward(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x), the dense block's FFN.

    An MoE's experts compute the same function but keep their weights stacked in
    :class:`effllm.moe.MoE` and run through a grouped kernel; they do not use this class.
    """

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, d_hidden, bias=False)
        self.w3 = nn.Linear(d_model, d_hidden, bias=False)
        self.w2 = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., d_model) -> (..., d_model)"""
        return self.w2(F.silu(self.w1(x)) * self.w3(x))
