"""Every lab's presets: one convention, and the GPU presets built and run for one step on the CPU
so that they cannot rot on machines without a GPU."""

import dataclasses
import math
import random
import warnings

import pytest
import torch

from effllm import fp8, presets, runtime
from effllm.grpo import GRPOConfig, train_grpo
from effllm.model import Transformer
from effllm.moe import balance_step
from effllm.rl_tasks import AdditionTask, demonstrations
from effllm.train import train

ALL = [(lab, name) for lab in presets.LABS for name in ("cpu", "gpu")]


@pytest.mark.parametrize(("lab", "name"), ALL)
def test_every_lab_has_a_frozen_cpu_and_gpu_preset(lab, name):
    p = presets.PRESETS[lab][name]
    assert dataclasses.is_dataclass(p) and p.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"


def test_load_picks_overrides_and_names_bad_input(monkeypatch):
    monkeypatch.setenv("EFFLLM_PRESET", "cpu")
    p = presets.load("moe", steps=7)
    assert p.name == "cpu" and p.steps == 7
    assert presets.PRESETS["moe"]["cpu"].steps != 7  # the shipped preset is untouched
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the GPU preset on a CPU warns that it will be slow
        assert presets.load("moe", "gpu") == presets.PRESETS["moe"]["gpu"]
    with pytest.raises(ValueError, match="no field stpes; its fields are"):
        presets.load("moe", stpes=7)
    with pytest.raises(ValueError, match="unknown lab 'mo'"):
        presets.load("mo")
    monkeypatch.setenv("EFFLLM_PRESET", "tpu")
    with pytest.raises(ValueError, match="EFFLLM_PRESET='tpu'"):
        presets.load("moe")


def test_gpu_presets_are_bigger_than_cpu_presets():
    for lab in ("moe", "attention"):
        cpu, gpu = (presets.PRESETS[lab][n].models() for n in ("cpu", "gpu"))
        for name in cpu:
            small, big = Transformer(cpu[name]).num_params(), Transformer(gpu[name]).num_params()
            assert big > 3 * small, (lab, name)
    cpu, gpu = (presets.PRESETS["grpo"][n] for n in ("cpu", "gpu"))
    assert Transformer(gpu.model).num_params() > 3 * Transformer(cpu.model).num_params()
    cpu, gpu = (presets.PRESETS["fp8"][n].model() for n in ("cpu", "gpu"))
    assert Transformer(gpu).num_params() > 3 * Transformer(cpu).num_params()


def _one_step(cfg, lr: float, seq_len: int) -> None:
    torch.manual_seed(0)
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    idx = torch.randint(0, 256, (2, seq_len + 1))
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    before = model.head.weight.detach().clone()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.head.weight)


@pytest.mark.parametrize("lab", ["moe", "attention"])
def test_gpu_preset_models_build_and_train_one_step_on_cpu(lab):
    p = presets.PRESETS[lab]["gpu"]
    for cfg in p.models().values():
        _one_step(cfg, p.lr, p.seq_len)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_gpu_path_trains_in_mixed_precision(dtype):
    """What a GPU runs (autocast, and a gradient scaler for float16), exercised on the CPU."""
    precision = runtime.Precision("cpu", dtype)
    assert precision.needs_scaler == (dtype == torch.float16)
    models = {
        **presets.PRESETS["moe"]["gpu"].models(),
        **presets.PRESETS["attention"]["cpu"].models(),
    }
    for name, cfg in models.items():
        torch.manual_seed(0)
        model = Transformer(cfg)
        before = model.head.weight.detach().clone()
        idx = torch.randint(0, 256, (2, 65))
        hist = train(
            model,
            lambda split, idx=idx: (idx[:, :-1], idx[:, 1:]),
            steps=2,
            eval_every=2,
            eval_batches=1,
            precision=precision,
            on_step=balance_step if cfg.ffn == "moe" else None,
        )
        assert hist["train_loss"].map(math.isfinite).all(), name
        assert model.head.weight.dtype == torch.float32, name  # weights stay float32
        assert not torch.equal(before, model.head.weight), name


def test_mixed_precision_only_on_a_gpu():
    assert runtime.precision(torch.device("cpu")).dtype is None
    assert runtime.precision(torch.device("cpu"), mixed=False).dtype is None


def test_attention_presets_leave_room_for_the_decoding_run():
    for p in presets.PRESETS["attention"].values():
        assert p.decode_prompt + p.decode_tokens <= p.max_len
        assert set(p.trained) <= set(p.models())


def test_grpo_gpu_preset_builds_and_takes_one_grpo_step_on_cpu():
    p = presets.PRESETS["grpo"]["gpu"]
    task = AdditionTask(p.n_digits)
    model = Transformer(p.model)
    assert task.prompt_len + task.max_completion_len <= p.model.max_len
    problems = task.problems(4, "train", seed=0)
    x, y = task.sft_batch(problems, demonstrations(problems, p.tagged_fraction, random.Random(0)))
    assert model(x, y)[1].item() > 0
    cfg = dataclasses.replace(p.rl, steps=1, prompts_per_step=2, G=2, eval_problems=4)
    assert isinstance(cfg, GRPOConfig)
    hist = train_grpo(model, task, cfg)
    assert len(hist) == 2 and hist["heldout_accuracy"].notna().all()
    assert math.isfinite(hist["loss"].iloc[1]) and hist["length"].iloc[1] >= 1


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_fp8_presets_divide_into_v3_tiles_and_train_one_fp8_step(name):
    p = presets.PRESETS["fp8"][name]
    for size in (p.d_model, p.d_ff, p.batch * p.seq_len, *p.gemm_shape, *p.inner_dims):
        assert size % fp8.BLOCK == 0, size
    torch.manual_seed(0)
    model = Transformer(p.model())
    idx = torch.randint(0, 256, (2, p.seq_len + 1))  # 2 x seq_len tokens: whole tiles
    with fp8.fp8_training(model, fp8.RECIPES["fine-grained"]):
        loss = model(idx[:, :-1], idx[:, 1:])[1]
        loss.backward()
    assert torch.isfinite(loss)
    assert model.blocks[0].ffn.w1.weight.grad.abs().sum() > 0
