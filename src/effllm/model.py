"""A small decoder-only transformer in the style of DeepSeek-V3, readable end to end.

Pre-norm blocks (RMSNorm), rotary positions, SwiGLU feed-forward. The attention and the
feed-forward network (dense, or a mixture of experts) are chosen by name in :class:`ModelConfig`,
so the labs can compare variants in otherwise identical models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from effllm.attention import AttentionConfig, build_attention
from effllm.kv_cache import KVCache, LayerCache
from effllm.layers import FeedForward, RMSNorm
from effllm.moe import MoE, MoEConfig
from effllm.sampling import sample_next
from effllm.tokenizer import VOCAB_SIZE

FFN_KINDS = ("dense", "moe")


@dataclass
class ModelConfig:
    """Shape of the model. ``ffn`` is one of ``FFN_KINDS``; ``d_ff`` is the dense hidden size,
    ``moe`` the mixture of experts' shape (required, and only used, when ``ffn == "moe"``)."""

    vocab_size: int = VOCAB_SIZE
    max_len: int = 256
    n_layer: int = 4
    d_model: int = 128
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    ffn: str = "dense"
    d_ff: int = 384
    moe: MoEConfig | None = None


def build_ffn(cfg: ModelConfig) -> nn.Module:
    """The feed-forward module named by ``cfg.ffn``."""
    if cfg.ffn == "dense":
        return FeedForward(cfg.d_model, cfg.d_ff)
    if cfg.ffn == "moe":
        if cfg.moe is None:
            raise ValueError('ffn="moe" needs ModelConfig.moe, an effllm.moe.MoEConfig')
        return MoE(cfg.d_model, cfg.moe)
    raise ValueError(f"unknown ffn kind {cfg.ffn!r}; choose one of {FFN_KINDS}")


def with_mla_form(model: Transformer, absorb: bool) -> Transformer:
    """A copy of an MLA ``model`` (same weights) that attends in the naive or absorbed form."""
    att = dataclasses.replace(model.cfg.attention, mla_absorb=absorb)
    twin = Transformer(dataclasses.replace(model.cfg, attention=att))
    twin.load_state_dict(model.state_dict())
    return twin.to(next(model.parameters()).device)


class Block(nn.Module):
    """x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = build_attention(cfg.d_model, cfg.max_len, cfg.attention)
        self.ffn_norm = RMSNorm(cfg.d_model)
        self.ffn = build_ffn(cfg)

    def forward(
        self, x: torch.Tensor, start_pos: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model)"""
        x = x + self.attn(self.attn_norm(x), start_pos, cache)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """Token embedding -> n_layer blocks -> final norm -> output head (untied)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.n_layer <= 0 or cfg.d_model <= 0 or cfg.max_len <= 0:
            raise ValueError(f"n_layer, d_model and max_len must be positive: {cfg}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def new_cache(self) -> KVCache:
        """An empty KV cache sized for this model."""
        return KVCache(self.cfg.n_layer, self.cfg.max_len)

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx: (batch, seq) -> the last block's output after the final norm, (batch, seq,
        d_model): what the output head reads, and what a multi-token prediction module starts
        from (:mod:`effllm.mtp`). With ``cache``, as in :meth:`forward`."""
        start_pos = cache.seq_len if cache is not None else 0
        x = self.embed(idx)
        for i, block in enumerate(self.blocks):
            x = block(x, start_pos, cache.layers[i] if cache is not None else None)
        return self.norm(x)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (batch, seq) token ids -> logits (batch, seq, vocab), and the loss if targets.

        targets: (batch, seq), with -100 at positions that do not count. With ``cache``, idx
        holds only the new tokens; their positions continue from what the cache holds. In training
        mode the loss includes the auxiliary losses the feed-forward layers report (an MoE's
        balance loss); in evaluation mode it is the cross-entropy alone.
        """
        logits = self.head(self.hidden(idx, cache))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        aux = [b.ffn.aux_loss for b in self.blocks if getattr(b.ffn, "aux_loss", None) is not None]
        if self.training and aux:
            loss = loss + sum(aux)
        return logits, loss

    def num_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample ``max_new_tokens`` after idx: (batch, seq); return (batch, seq + new).

        temperature 0 is greedy decoding. Without the cache every step re-runs the whole prefix;
        with it, each step feeds one token.
        """
        if idx.shape[1] + max_new_tokens > self.cfg.max_len:
            raise ValueError(
                f"{idx.shape[1]} + {max_new_tokens} tokens exceed max_len={self.cfg.max_len}"
            )
        cache = self.new_cache() if use_cache else None
        out, step_in = idx, idx
        for _ in range(max_new_tokens):
            logits, _ = self(step_in if use_cache else out, cache=cache)
            nxt = sample_next(logits[:, -1], temperature, top_k, generator)
            out = torch.cat([out, nxt], dim=1)
            step_in = nxt
        return out
