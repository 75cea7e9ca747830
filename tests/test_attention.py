import dataclasses

import pytest
import torch

from effllm import deepseek_v3 as v3
from effllm.attention import (
    AttentionConfig,
    MultiHeadLatentAttention,
    attend,
    build_attention,
    kv_cache_bytes_per_token,
    kv_cache_values_per_token,
    resolve,
)
from effllm.kv_cache import LayerCache
from effllm.model import ModelConfig, Transformer
from effllm.speed import generation_rate, mla_decode_step_seconds

D_MODEL = 64
VARIANTS = {
    "mha": AttentionConfig("mha", 8),
    "gqa": AttentionConfig("gqa", 8, n_kv_groups=2),
    "mqa": AttentionConfig("mqa", 8),
    "mla": AttentionConfig("mla", 8, kv_lora_rank=24, qk_rope_head_dim=4),
    "mla_absorbed": AttentionConfig("mla", 8, kv_lora_rank=24, qk_rope_head_dim=4, mla_absorb=True),
    "mla_q_lora": AttentionConfig("mla", 4, kv_lora_rank=16, q_lora_rank=12, v_head_dim=8),
}


def small(att: AttentionConfig) -> ModelConfig:
    return ModelConfig(max_len=32, n_layer=2, d_model=D_MODEL, d_ff=96, attention=att)


def trained_like(cfg: ModelConfig) -> Transformer:
    """A model with weights large enough that attention is far from uniform."""
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15)
    return model


@pytest.mark.parametrize("name", VARIANTS)
def test_cached_decoding_matches_full_forward_for_every_variant(name):
    cfg = small(VARIANTS[name])
    model = trained_like(cfg)
    idx = torch.randint(0, 256, (2, 14))
    full, _ = model(idx)
    cache = model.new_cache()
    pieces = [model(idx[:, :5], cache=cache)[0], model(idx[:, 5:9], cache=cache)[0]]
    pieces += [model(idx[:, i : i + 1], cache=cache)[0] for i in range(9, 14)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-4, atol=1e-4)
    greedy = [model.generate(idx[:, :4], 8, temperature=0, use_cache=c) for c in (True, False)]
    assert torch.equal(*greedy)


def closed_form_values_per_token(att: AttentionConfig, d_model: int) -> int:
    """Table 1 of the V2 report written out from a configuration's own fields (not from
    ``kv_cache_values_per_token``): 2 n_kv d_h for MHA/GQA/MQA, d_c + d_h^R for MLA."""
    d_h = att.head_dim or d_model // att.n_head
    if att.kind == "mla":
        return att.kv_lora_rank + (att.qk_rope_head_dim or d_h // 2)
    n_kv = {"mha": att.n_head, "gqa": att.n_kv_groups, "mqa": 1}[att.kind]
    return 2 * n_kv * d_h


@pytest.mark.parametrize("name", VARIANTS)
def test_cache_holds_what_the_closed_form_predicts(name):
    cfg = small(VARIANTS[name])
    model = trained_like(cfg)
    cache = model.new_cache()
    batch, tokens = 3, 11
    with torch.no_grad():
        model(torch.randint(0, 256, (batch, tokens)), cache=cache)
    buffers = [buf for layer in cache.layers for buf in layer.buffers.values()]
    per_token = closed_form_values_per_token(cfg.attention, D_MODEL)
    # Numbers the model actually wrote: buffers start as NaN, every finite entry was stored.
    written = sum(int(buf.isfinite().sum()) for buf in buffers)
    assert written == per_token * cfg.n_layer * batch * tokens
    # Memory actually held: the buffers' storage, max_len positions each, float32.
    held = sum(buf.untyped_storage().nbytes() for buf in buffers)
    assert held == 4 * per_token * cfg.n_layer * batch * cfg.max_len
    assert cache.nbytes_allocated() == held
    assert cache.nbytes_filled() == 4 * per_token * cfg.n_layer * batch * tokens
    assert kv_cache_bytes_per_token(cfg.attention, D_MODEL, torch.float32) == 4 * per_token
    expected_names = {"c_KV", "k_R"} if cfg.attention.kind == "mla" else {"k", "v"}
    assert set(cache.layers[0].tensors()) == expected_names


def test_filled_and_allocated_bytes_are_told_apart():
    cache = LayerCache(10)
    assert cache.nbytes_filled() == cache.nbytes_allocated() == 0  # nothing allocated yet
    cache.update(k=torch.ones(2, 4, 3), v=torch.ones(2, 4, 5))
    assert cache.nbytes_filled() == 2 * 4 * (3 + 5) * 4
    assert cache.nbytes_allocated() == 2 * 10 * (3 + 5) * 4
    assert cache.buffers["k"][:, 4:].isnan().all()  # never written: NaN, not stale numbers
    cache.update(k=torch.zeros(2, 6, 3), v=torch.zeros(2, 6, 5))
    assert cache.nbytes_filled() == cache.nbytes_allocated()


def test_cache_values_follow_the_v2_table():
    head = D_MODEL // 8
    values = {n: kv_cache_values_per_token(c, D_MODEL) for n, c in VARIANTS.items()}
    assert values["mha"] == 2 * 8 * head
    assert values["gqa"] == 2 * 2 * head
    assert values["mqa"] == 2 * head
    assert values["mla"] == values["mla_absorbed"] == 24 + 4
    assert values["mla_q_lora"] == 16 + (D_MODEL // 4) // 2  # the query latent is never cached


def test_v3_scale_uses_the_same_function():
    mla, mha, d = v3.mla(), v3.same_shape_mha(), v3.CONFIG.dim
    assert kv_cache_values_per_token(mla, d) == 512 + 64
    assert kv_cache_values_per_token(mha, d) == 2 * 128 * 128
    assert kv_cache_bytes_per_token(mla, d, torch.bfloat16) == 1152
    assert kv_cache_bytes_per_token(mha, d, torch.bfloat16) == 65_536
    gb_128k = 1152 * 61 * 128 * 1024 / 1e9
    assert gb_128k == pytest.approx(9.21, abs=0.01)


def test_naive_and_absorbed_mla_agree_with_the_same_weights():
    base = VARIANTS["mla_q_lora"]
    naive = trained_like(small(base))
    absorbed = Transformer(small(dataclasses.replace(base, mla_absorb=True))).eval()
    absorbed.load_state_dict(naive.state_dict())
    idx = torch.randint(0, 256, (2, 16))
    a, b = naive(idx)[0], absorbed(idx)[0]
    assert a.abs().max() > 1  # not a trivially small output
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_mla_latent_is_position_free_and_rotary_key_is_not():
    torch.manual_seed(0)
    att = MultiHeadLatentAttention(D_MODEL, 32, VARIANTS["mla"])
    x = torch.randn(1, 4, D_MODEL)
    at0, at7 = LayerCache(32), LayerCache(32)
    att(x, 0, at0)
    at7.update(c_KV=torch.zeros(1, 7, 24), k_R=torch.zeros(1, 7, 4))
    att(x, 7, at7)
    torch.testing.assert_close(at0.tensors()["c_KV"], at7.tensors()["c_KV"][:, 7:])
    assert not torch.allclose(at0.tensors()["k_R"], at7.tensors()["k_R"][:, 7:])


def test_grouped_attend_equals_repeated_heads():
    torch.manual_seed(0)
    q = torch.randn(2, 6, 5, 8)
    k, v = torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 4)
    reference = attend(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), start_pos=4)
    torch.testing.assert_close(attend(q, k, v, start_pos=4), reference)
    with pytest.raises(ValueError, match="cannot share"):
        attend(q, k[:, :2].repeat(1, 2, 1, 1), v[:, :2].repeat(1, 2, 1, 1), start_pos=4)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (AttentionConfig("gqa", 6, n_kv_groups=4), "n_head=6 is not divisible by n_kv_groups=4"),
        (AttentionConfig("gqa", 6), "n_kv_groups must be a positive integer, got None"),
        (AttentionConfig("gqa", 6, n_kv_groups=0), "n_kv_groups must be a positive"),
        (AttentionConfig("mqa", 8, n_kv_groups=2), "has 1 kv groups"),
        (AttentionConfig("mla", 8, kv_lora_rank=0), "latent rank kv_lora_rank > 0, got 0"),
        (AttentionConfig("mla", 8), "latent rank kv_lora_rank > 0, got None"),
        (AttentionConfig("mla", 8, kv_lora_rank=8, q_lora_rank=0), "q_lora_rank"),
        (AttentionConfig("mla", 8, kv_lora_rank=8, qk_rope_head_dim=3), "even"),
        (AttentionConfig("mla", 8, kv_lora_rank=8, n_kv_groups=2), "no kv groups"),
        (AttentionConfig("mha", 8, kv_lora_rank=8), "only apply to kind='mla'"),
        (AttentionConfig("mha", 8, mla_absorb=True), "only apply to kind='mla'"),
        (AttentionConfig("sparse", 8), "unknown attention kind"),
    ],
)
def test_bad_configurations_are_value_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        resolve(cfg, 48)
    with pytest.raises(ValueError, match=match):
        build_attention(48, 16, cfg)
    with pytest.raises(ValueError, match=match):
        kv_cache_bytes_per_token(cfg, 48)


def test_explicit_head_dim_need_not_divide_d_model():
    cfg = AttentionConfig("gqa", 4, head_dim=16, n_kv_groups=2)
    assert build_attention(56, 8, cfg)(torch.randn(1, 3, 56)).shape == (1, 3, 56)
    assert kv_cache_values_per_token(cfg, 56) == 64


def test_layer_cache_truncate():
    cache = LayerCache(8)
    cache.update(k=torch.ones(1, 5, 2))
    cache.truncate(3)
    assert cache.length == 3 and cache.nbytes_filled() == 3 * 2 * 4
    (k,) = cache.update(k=torch.zeros(1, 1, 2))
    assert k.shape == (1, 4, 2) and k[0, 3].eq(0).all()
    with pytest.raises(ValueError, match="truncate"):
        cache.truncate(5)


def test_speed_helpers_reject_bad_input():
    model = Transformer(small(VARIANTS["mha"]))
    with pytest.raises(ValueError, match="positive"):
        generation_rate(model, 4, 0)
    with pytest.raises(ValueError, match="MLA configuration"):
        mla_decode_step_seconds(D_MODEL, VARIANTS["gqa"], context=8)
    assert mla_decode_step_seconds(D_MODEL, VARIANTS["mla_absorbed"], context=8, repeats=1) > 0


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_prefill_in_chunks_with_the_cache_matches_the_full_forward(name):
    """Chunks of several tokens after a cached start: the causal mask's offset and the scale of
    the masked path (a single cached step needs neither)."""
    torch.manual_seed(0)
    model = Transformer(small(VARIANTS[name])).eval()
    x = torch.randint(0, 256, (2, 9))
    with torch.no_grad():
        full, _ = model(x)
        cache = model.new_cache()
        parts = [model(x[:, a:b], cache=cache)[0] for a, b in ((0, 1), (1, 5), (5, 9))]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)
