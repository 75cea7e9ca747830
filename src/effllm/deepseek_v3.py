"""DeepSeek-V3's published configuration and totals, written once for the whole course.

The sizes are those of ``inference/configs/config_671B.json`` in the deepseek-ai/DeepSeek-V3
repository, under the names that file and the reference ``inference/model.py`` use; the comments
give the symbols of the technical report (arXiv:2412.19437). The totals (parameters, tokens, the
GPU-hour price) are the report's own (§1, §3.1, §4.1-4.2). Everything else that needs V3 (the
cache arithmetic of lab 3, the parameter count of lab 2, the cost arithmetic of labs 1 and 6,
the tests) imports it from here, so a correction is made in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from effllm.attention import AttentionConfig


@dataclass(frozen=True)
class V3Config:
    """The main model's shape (the multi-token-prediction module is not part of this file)."""

    vocab_size: int = 129_280
    dim: int = 7168  # hidden size d
    inter_dim: int = 18_432  # hidden units of the dense feed-forward layers
    moe_inter_dim: int = 2048  # hidden units of each expert
    n_layers: int = 61
    n_dense_layers: int = 3  # the first 3 layers are dense; the other 58 are MoE layers
    n_heads: int = 128  # n_h
    n_routed_experts: int = 256  # N_r
    n_shared_experts: int = 1  # N_s
    n_activated_experts: int = 8  # K_r, routed experts per token
    n_expert_groups: int = 8  # routing first picks groups (one per node in training) ...
    n_limited_groups: int = 4  # ... at most M = 4 of them per token (node-limited routing)
    route_scale: float = 2.5  # the routed experts' weights are scaled by this
    score_func: str = "sigmoid"  # s_{i,t} = sigmoid(u_t^T e_i)
    q_lora_rank: int = 1536  # d_c', the query latent
    kv_lora_rank: int = 512  # d_c, the key-value latent that MLA caches
    qk_nope_head_dim: int = 128  # d_h, per-head query/key width without position
    qk_rope_head_dim: int = 64  # d_h^R, the decoupled rotary key shared by all heads
    v_head_dim: int = 128  # per-head value width

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers


CONFIG = V3Config()

# Totals stated in the report (§1, §4.1): parameters of the main model, pre-training tokens.
TOTAL_PARAMS = 671e9
ACTIVE_PARAMS = 37e9
TRAINING_TOKENS = 14.8e12
USD_PER_GPU_HOUR = 2.0  # the report's assumed rental price of one H800 for one hour (Table 1)

# Load balancing (§2.1.2, §4.2): the bias update speed gamma, for the first 14.3T tokens, and the
# weight alpha of the small sequence-wise balance loss that V3 keeps beside the bias.
BIAS_UPDATE_SPEED = 0.001
SEQUENCE_AUX_LOSS_ALPHA = 0.0001

# Multi-token prediction (§2.2, §4.2, §5.4.3): one MTP module; its loss weight lambda, 0.3 for the
# first 10T tokens and 0.1 for the remaining 4.8T; the share of its drafted second tokens accepted
# in decoding, and the decoding speed-up in tokens per second that this gave.
MTP_DEPTH = 1
MTP_LAMBDA = (0.3, 0.1)
MTP_ACCEPTANCE = (0.85, 0.90)
MTP_TPS_SPEEDUP = 1.8


def mla(cfg: V3Config = CONFIG) -> AttentionConfig:
    """V3's multi-head latent attention as an :class:`~effllm.attention.AttentionConfig`."""
    return AttentionConfig(
        kind="mla",
        n_head=cfg.n_heads,
        kv_lora_rank=cfg.kv_lora_rank,
        q_lora_rank=cfg.q_lora_rank,
        qk_nope_head_dim=cfg.qk_nope_head_dim,
        qk_rope_head_dim=cfg.qk_rope_head_dim,
        v_head_dim=cfg.v_head_dim,
    )


def same_shape_mha(cfg: V3Config = CONFIG) -> AttentionConfig:
    """Standard multi-head attention of V3's shape (n_h heads of d_h), to compare MLA with."""
    return AttentionConfig(kind="mha", n_head=cfg.n_heads, head_dim=cfg.qk_nope_head_dim)


def param_counts(cfg: V3Config = CONFIG) -> tuple[float, float]:
    """(total, active) parameters of V3's main model, counted from its shape.

    Counts the weight matrices: MLA's projections, the dense and expert SwiGLU layers (three
    matrices each), the routers and the input and output embeddings; the norms (under a million
    numbers) are left out. A token is "active" in the shared parts and in ``n_activated_experts``
    of the ``n_routed_experts`` routed experts of each MoE layer.
    """
    d, h = cfg.dim, cfg.n_heads
    qk_head_dim = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
    attention = (
        d * cfg.q_lora_rank  # W^DQ: the query latent
        + cfg.q_lora_rank * h * qk_head_dim  # W^UQ and W^QR: queries from it
        + d * (cfg.kv_lora_rank + cfg.qk_rope_head_dim)  # W^DKV and W^KR: latent, rotary key
        + cfg.kv_lora_rank * h * (cfg.qk_nope_head_dim + cfg.v_head_dim)  # W^UK and W^UV
        + h * cfg.v_head_dim * d  # W^O
    )
    expert = 3 * d * cfg.moe_inter_dim
    shared = (
        cfg.n_layers * attention
        + cfg.n_dense_layers * 3 * d * cfg.inter_dim
        + cfg.n_moe_layers * (cfg.n_shared_experts * expert + cfg.n_routed_experts * d)
        + 2 * cfg.vocab_size * d  # embedding and output head, not tied
    )
    routed = cfg.n_moe_layers * cfg.n_routed_experts * expert
    return shared + routed, shared + routed * cfg.n_activated_experts / cfg.n_routed_experts
