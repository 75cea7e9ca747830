"""DeepSeek-V3's configuration, checked against the report's totals."""

import dataclasses

import pytest

from effllm import deepseek_v3 as v3


def test_the_shape_reproduces_the_published_sizes():
    total, active = v3.param_counts()
    assert total == pytest.approx(v3.TOTAL_PARAMS, rel=0.01)  # 671.0B counted
    assert active == pytest.approx(v3.ACTIVE_PARAMS, rel=0.02)  # 37.6B counted
    assert active / total < 0.06


def test_param_counts_follow_the_configuration():
    total, active = v3.param_counts()
    wider = dataclasses.replace(v3.CONFIG, n_activated_experts=16)
    total16, active16 = v3.param_counts(wider)
    expert = 3 * v3.CONFIG.dim * v3.CONFIG.moe_inter_dim
    assert total16 == total
    assert active16 - active == pytest.approx(58 * 8 * expert)
    assert v3.CONFIG.n_moe_layers == 58


def test_attention_configs_use_the_paper_sizes():
    mla = v3.mla()
    assert (mla.n_head, mla.kv_lora_rank, mla.qk_rope_head_dim) == (128, 512, 64)
    assert v3.same_shape_mha().head_dim == v3.CONFIG.qk_nope_head_dim
