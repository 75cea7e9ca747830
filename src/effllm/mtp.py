"""Multi-token prediction (MTP) as DeepSeek-V3 trains with it (report §2.2).

Besides the main model's next-token prediction, D small sequential modules predict further
ahead. For depth k = 1..D and position i the report writes

    h'_i^k = M_k [RMSNorm(h_i^{k-1}); RMSNorm(Emb(t_{i+k}))]          M_k: (d, 2d)
    h_{1:T-k}^k = TRM_k(h'_{1:T-k}^k)                                    one transformer block
    P_{i+k+1}^k = OutHead(h_i^k)                                         shared with the main model
    L_MTP^k = -(1/T) Σ_i log P_{i+k+1}^k[t_{i+k+1}],   L_MTP = (λ / D) Σ_k L_MTP^k

Module k combines what depth k - 1 knew at position i with the embedding of the token k
positions ahead, runs one causal block over the sequence and predicts the token after that:
depth 1 predicts t_{i+2} at position i, the token after next. The embedding ``Emb`` and the
output head ``OutHead`` are the main model's own (the same Parameter objects); each module has
its own two norms, its projection M_k and its block.

Which hidden state is h^0? The report says "the representation given by the main model".
DeepSeek's own inference code has no MTP module (its ``convert.py`` skips the weights of layer
61, the module), but the released weights (``README_WEIGHTS.md``: ``enorm``, ``hnorm``,
``eh_proj``, a block, ``shared_head``) are run by serving engines that feed the module the main
model's output *after* its final norm, the vector its output head reads. So does this module:
h^0 = :meth:`effllm.model.Transformer.hidden`. Two details of those weights that the report's
equations leave out are followed too: the module normalises its block's output before the shared
head (their ``shared_head.norm``), as the main model does before its own head; and h^k, the
block's output before that norm, is what depth k + 1 receives. The released code concatenates
``[enorm(embedding); hnorm(h)]``, the report ``[RMSNorm(h); RMSNorm(Emb)]``: the same function up
to the order of M_k's columns. We follow the report.

Positions: the course's batches are ``x = t_{0:T}``, ``y = t_{1:T+1}``. Depth k embeds
``y[:, k-1 : T-1]`` (t_{i+k} for i = 0..T-k-1) and is scored against ``y[:, k:]`` (t_{i+k+1}), so
position i of depth k reads tokens up to t_{i+k} and never its own target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from effllm.kv_cache import LayerCache
from effllm.layers import RMSNorm
from effllm.model import Block, ModelConfig, Transformer

Combine = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class MTPConfig:
    """The MTP objective: ``depth`` sequential modules (D), the loss weight ``lam`` (λ)."""

    depth: int = 1  # D; V3 trains with 1
    lam: float = 0.3  # λ; V3: 0.3 for the first 10T tokens, then 0.1


def combine(
    h: torch.Tensor,
    e: torch.Tensor,
    M: torch.Tensor,
    g_h: torch.Tensor,
    g_e: torch.Tensor,
    eps: float = 1e-6,
) -> torch.Tensor:
    """The combination step h' = M [RMSNorm(h); RMSNorm(e)].

    h: (batch, seq, d) the previous depth's hidden state h^{k-1}; e: (batch, seq, d) the embedding
    Emb(t_{i+k}); M: (d, 2d) the projection M_k; g_h, g_e: (d,) the two norms' gains. Returns
    h': (batch, seq, d).
    """
    d = h.shape[-1]
    x = torch.cat([F.rms_norm(h, (d,), g_h, eps), F.rms_norm(e, (d,), g_e, eps)], dim=-1)
    return x @ M.T


class MTPModule(nn.Module):
    """One depth k: the two norms, the projection M_k, the block TRM_k and the norm before the
    shared head. ``combine_fn`` computes the combination step (a lab passes its own)."""

    def __init__(self, cfg: ModelConfig, combine_fn: Combine = combine) -> None:
        super().__init__()
        self.hnorm = RMSNorm(cfg.d_model)
        self.enorm = RMSNorm(cfg.d_model)
        self.proj = nn.Linear(2 * cfg.d_model, cfg.d_model, bias=False)  # M_k, "eh_proj"
        self.block = Block(cfg)  # TRM_k
        self.norm = RMSNorm(cfg.d_model)  # before the shared head
        self.combine_fn = combine_fn

    def forward(
        self,
        h_prev: torch.Tensor,
        e: torch.Tensor,
        start_pos: int = 0,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        """h_prev: (batch, seq, d) h^{k-1}; e: (batch, seq, d) Emb(t_{i+k}) -> h^k (batch, seq, d).

        With ``cache`` (the block's own), the positions continue from ``start_pos``.
        """
        h = self.combine_fn(h_prev, e, self.proj.weight, self.hnorm.weight, self.enorm.weight)
        return self.block(h, start_pos, cache)


class MTPTransformer(nn.Module):
    """The course's :class:`~effllm.model.Transformer` (``main``) with D MTP modules that share
    its embedding and output head.

    ``forward(idx, targets)`` returns the main model's logits and, in training mode, the loss
    L_main + L_MTP; in evaluation mode the loss is the main model's next-token cross-entropy
    alone, so that it compares directly with a model trained without MTP.
    """

    def __init__(self, cfg: ModelConfig, mtp: MTPConfig, combine_fn: Combine = combine) -> None:
        super().__init__()
        if mtp.depth < 1 or mtp.lam < 0:
            raise ValueError(f"MTP needs depth >= 1 and lam >= 0, got {mtp}")
        self.cfg = cfg
        self.mtp_cfg = mtp
        self.main = Transformer(cfg)
        self.mtp = nn.ModuleList(MTPModule(cfg, combine_fn) for _ in range(mtp.depth))
        self.mtp.apply(Transformer._init_weights)

    def logits(self, module: MTPModule, h: torch.Tensor) -> torch.Tensor:
        """The shared head on a depth's hidden state: h (batch, seq, d) -> (batch, seq, vocab)."""
        return self.main.head(module.norm(h))

    def mtp_logits(self, h0: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Every depth's logits: D tensors, depth k of shape (batch, T - k, vocab).

        h0: (batch, T, d) the main model's hidden state; y: (batch, T) the next tokens
        t_{1:T+1}. Row i of depth k predicts t_{i+k+1} = ``y[:, i + k]``.
        """
        T = y.shape[1]
        out, h = [], h0
        for k, module in enumerate(self.mtp, start=1):
            h = module(h[:, : T - k], self.main.embed(y[:, k - 1 : T - 1]))
            out.append(self.logits(module, h))
        return out

    def mtp_losses(self, h0: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """L_MTP^k for k = 1..D: the cross-entropy of depth k summed over its T - k positions and
        divided by T, as the report writes it (-100 in ``y`` marks positions that do not count)."""
        n = (y != -100).sum().clamp(min=1)
        return [
            F.cross_entropy(
                lk.flatten(0, 1).float(), y[:, k:].flatten(), ignore_index=-100, reduction="sum"
            )
            / n
            for k, lk in enumerate(self.mtp_logits(h0, y), start=1)
        ]

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (batch, T) -> main logits (batch, T, vocab), and the loss if targets (batch, T)."""
        h0 = self.main.hidden(idx)
        logits = self.main.head(h0)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        if self.training:
            loss = loss + self.mtp_cfg.lam / self.mtp_cfg.depth * sum(self.mtp_losses(h0, targets))
            blocks = [*self.main.blocks, *(m.block for m in self.mtp)]
            aux = [b.ffn.aux_loss for b in blocks if getattr(b.ffn, "aux_loss", None) is not None]
            if aux:
                loss = loss + sum(aux)
        return logits, loss


@torch.no_grad()
def mtp_accuracy(model: MTPTransformer, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Top-1 accuracy of each depth on a batch x, y: (batch, T); depth k scored on t_{i+k+1}."""
    was_training = model.training
    model.eval()
    out = [
        (lk.argmax(-1) == y[:, k:]).float().mean().item()
        for k, lk in enumerate(model.mtp_logits(model.main.hidden(x), y), start=1)
    ]
    model.train(was_training)
    return out
