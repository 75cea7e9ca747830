"""Attention checked against the equations written out here, not against another code path.

The MLA reference follows DeepSeek-V2 §2.1.2-2.1.3 line by line, one head and one query position
at a time, with the module's own weights; it shares no code with the module beyond reading those
weights, so a wrong scale, norm, rotation or mask in the module (in both its forms) shows.
"""

import dataclasses
import math

import pytest
import torch

from effllm.attention import (
    AttentionConfig,
    MultiHeadAttention,
    MultiHeadLatentAttention,
    build_attention,
    resolve,
)

D_MODEL = 16
THETA = 10000.0
# The module keeps its RoPE tables in float32 (angles to ~1e-7); a wrong scale, sign or mask
# moves the outputs by 1e-2 or more.
TOL = dict(rtol=1e-5, atol=1e-5)


def rope(x: torch.Tensor, pos: int) -> torch.Tensor:
    """Rotate each channel pair (x_{2j}, x_{2j+1}) of x: (d,) by pos * theta^(-2j/d)."""
    out = x.clone()
    d = x.shape[0]
    for j in range(d // 2):
        angle = pos * THETA ** (-2 * j / d)
        c, s = math.cos(angle), math.sin(angle)
        out[2 * j] = c * x[2 * j] - s * x[2 * j + 1]
        out[2 * j + 1] = s * x[2 * j] + c * x[2 * j + 1]
    return out


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) * weight, for x: (d,)."""
    return x / torch.sqrt((x * x).mean() + eps) * weight


def causal_softmax_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float
) -> torch.Tensor:
    """One query q: (d_k,) against keys: (s, d_k), values: (s, d_v): softmax(scale q.k) v."""
    w = torch.exp(scale * (keys @ q))
    return (w / w.sum()) @ values


def mla_reference(m: MultiHeadLatentAttention, x: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V2 §2.1.2-2.1.3 for one sequence x: (T, d_model), head by head."""
    H, d_nope, d_R, d_v = m.n_head, m.d_nope, m.d_R, m.d_v
    W_DKV, W_UK, W_UV, W_KR, W_O = (
        m.W_DKV.weight,
        m.W_UK.weight,
        m.W_UV.weight,
        m.W_KR.weight,
        m.W_O.weight,
    )
    W_UQ, W_QR = m.W_UQ.weight, m.W_QR.weight
    compressed_q = isinstance(m.W_DQ, torch.nn.Linear)
    scale = 1 / math.sqrt(d_nope + d_R)  # 1 / sqrt(d_h + d_h^R)
    T = x.shape[0]
    c_KV = [rms_norm(W_DKV @ h, m.kv_norm.weight) for h in x]  # latent, RMS-normalised as cached
    k_R = [rope(W_KR @ h, t) for t, h in enumerate(x)]  # shared by all heads
    outputs = []
    for t, h in enumerate(x):
        c_Q = rms_norm(m.W_DQ.weight @ h, m.q_norm.weight) if compressed_q else h  # query latent
        heads = []
        for i in range(H):
            q_C = W_UQ[i * d_nope : (i + 1) * d_nope] @ c_Q
            q_R = rope(W_QR[i * d_R : (i + 1) * d_R] @ c_Q, t)
            q = torch.cat([q_C, q_R])  # q_{t,i} = [q_C; q_R]
            keys, values = [], []
            for j in range(t + 1):  # causal: positions 0..t
                k_C = W_UK[i * d_nope : (i + 1) * d_nope] @ c_KV[j]
                keys.append(torch.cat([k_C, k_R[j]]))  # k_{j,i} = [k_C; k_R]
                values.append(W_UV[i * d_v : (i + 1) * d_v] @ c_KV[j])
            heads.append(causal_softmax_attention(q, torch.stack(keys), torch.stack(values), scale))
        outputs.append(W_O @ torch.cat(heads))  # u_t = W^O [o_1; ...; o_H]
    assert len(outputs) == T
    return torch.stack(outputs)


def mha_reference(m: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention for x: (T, d_model): head i reads kv group i // (H / G)."""
    H, G, d = m.n_head, m.n_kv, m.head_dim
    rep = H // G
    q = [(m.wq.weight @ h).view(H, d) for h in x]
    k = [(m.wk.weight @ h).view(G, d) for h in x]
    v = [(m.wv.weight @ h).view(G, d) for h in x]
    outputs = []
    for t in range(x.shape[0]):
        heads = []
        for i in range(H):
            g = i // rep
            keys = torch.stack([rope(k[j][g], j) for j in range(t + 1)])
            values = torch.stack([v[j][g] for j in range(t + 1)])
            heads.append(causal_softmax_attention(rope(q[t][i], t), keys, values, d**-0.5))
        outputs.append(m.wo.weight @ torch.cat(heads))
    return torch.stack(outputs)


def _randomised(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in float64 with every weight, norm gains included, drawn at a scale where
    attention is far from uniform, so that a wrong scale changes the output visibly."""
    module = module.double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.6 + (p.dim() == 1))
    return module


MLA_CASES = {  # unequal widths, so that a mixed-up size fails
    "no_q_lora": AttentionConfig(
        "mla", 3, head_dim=4, kv_lora_rank=6, qk_nope_head_dim=4, qk_rope_head_dim=2, v_head_dim=5
    ),
    "q_lora": AttentionConfig(
        "mla", 2, kv_lora_rank=6, q_lora_rank=7, qk_nope_head_dim=3, qk_rope_head_dim=4
    ),  # v_head_dim = head_dim = 8
}


@pytest.mark.parametrize("absorb", [False, True], ids=["naive", "absorbed"])
@pytest.mark.parametrize("case", MLA_CASES)
def test_mla_equals_the_v2_equations_head_by_head(case, absorb):
    cfg = dataclasses.replace(MLA_CASES[case], rope_theta=THETA, mla_absorb=absorb)
    torch.manual_seed(0)
    m = _randomised(MultiHeadLatentAttention(D_MODEL, 8, cfg))
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    y = m(x)
    for b in range(2):
        torch.testing.assert_close(y[b], mla_reference(m, x[b]), **TOL)


@pytest.mark.parametrize("kind,groups", [("mha", None), ("gqa", 2), ("mqa", None)])
def test_mha_gqa_mqa_equal_per_head_attention(kind, groups):
    cfg = AttentionConfig(kind, n_head=4, n_kv_groups=groups, rope_theta=THETA)
    torch.manual_seed(0)
    m = _randomised(MultiHeadAttention(D_MODEL, 8, cfg))
    x = torch.randn(1, 4, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(m(x)[0], mha_reference(m, x[0]), **TOL)


def _closed_form_params(cfg: AttentionConfig, d: int) -> int:
    """Weights of an attention layer from its configuration alone; no biases anywhere."""
    H = cfg.n_head
    if cfg.kind != "mla":
        d_h = cfg.head_dim or d // H
        G = {"mha": H, "mqa": 1, "gqa": cfg.n_kv_groups}[cfg.kind]
        return d * H * d_h + 2 * d * G * d_h + H * d_h * d  # W_Q, W_K and W_V, W_O
    d_h = cfg.head_dim or d // H
    d_c, d_nope = cfg.kv_lora_rank, cfg.qk_nope_head_dim or d_h
    d_R, d_v = cfg.qk_rope_head_dim or d_h // 2, cfg.v_head_dim or d_h
    if cfg.q_lora_rank is None:
        query = d * H * (d_nope + d_R)  # W_UQ and W_QR straight from h
    else:
        d_q = cfg.q_lora_rank
        query = d * d_q + d_q + d_q * H * (d_nope + d_R)  # W_DQ, its RMSNorm gain, W_UQ, W_QR
    kv = d * d_c + d_c + d_c * H * (d_nope + d_v) + d * d_R  # W_DKV, its gain, W_UK, W_UV, W_KR
    return query + kv + H * d_v * d  # W_O


PARAM_CASES = [
    AttentionConfig("mha", 4),
    AttentionConfig("mha", 2, head_dim=6),
    AttentionConfig("gqa", 4, n_kv_groups=2),
    AttentionConfig("mqa", 4),
    AttentionConfig("mla", 4, kv_lora_rank=6),
    AttentionConfig("mla", 2, kv_lora_rank=5, q_lora_rank=7, qk_nope_head_dim=3, v_head_dim=6),
    AttentionConfig("mla", 4, kv_lora_rank=6, qk_rope_head_dim=2, head_dim=3),
]


@pytest.mark.parametrize("cfg", PARAM_CASES, ids=lambda c: f"{c.kind}-{c.q_lora_rank}")
def test_parameter_counts_equal_their_closed_form_and_no_projection_has_a_bias(cfg):
    m = build_attention(D_MODEL, 8, cfg)
    assert sum(p.numel() for p in m.parameters()) == _closed_form_params(cfg, D_MODEL)
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert linears and all(mod.bias is None for mod in linears)


def test_mla_rotary_width_boundaries():
    ok = resolve(AttentionConfig("mla", 4, kv_lora_rank=6, qk_rope_head_dim=2), D_MODEL)
    assert ok.qk_rope_head_dim == 2
    assert resolve(AttentionConfig("mla", 4, kv_lora_rank=6), D_MODEL).qk_rope_head_dim == 2
    for bad in (0, -2, 3):
        with pytest.raises(ValueError, match=f"positive and even, got {bad}"):
            resolve(AttentionConfig("mla", 4, kv_lora_rank=6, qk_rope_head_dim=bad), D_MODEL)
    with pytest.raises(ValueError, match="kv_lora_rank > 0, got 0"):
        resolve(AttentionConfig("mla", 4, kv_lora_rank=0), D_MODEL)
    assert resolve(AttentionConfig("mla", 4, kv_lora_rank=1), D_MODEL).kv_lora_rank == 1
