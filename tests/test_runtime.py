import pytest
import torch

from effllm import runtime


def test_preset_defaults_to_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.preset_name({}) == "cpu"


def test_preset_is_gpu_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.preset_name({}) == "gpu"


@pytest.mark.parametrize("value,expected", [("cpu", "cpu"), ("GPU", "gpu"), (" gpu ", "gpu")])
def test_environment_forces_preset(value, expected):
    assert runtime.preset_name({runtime.PRESET_ENV: value}) == expected


def test_unknown_preset_name_is_a_clear_error():
    with pytest.raises(
        ValueError, match="EFFLLM_PRESET='tpu' is not a preset; use one of cpu, gpu"
    ):
        runtime.preset_name({runtime.PRESET_ENV: "tpu"})


def test_select_preset_returns_the_named_config(monkeypatch):
    monkeypatch.delenv(runtime.PRESET_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    presets = {"cpu": "small", "gpu": "large"}
    assert runtime.select_preset(presets) == ("cpu", "small")
    with pytest.warns(UserWarning, match="GPU preset without CUDA"):
        assert runtime.select_preset(presets, "gpu") == ("gpu", "large")


def test_select_preset_rejects_bad_names_and_incomplete_mappings():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        runtime.select_preset({"cpu": 1, "gpu": 2}, "huge")
    with pytest.raises(ValueError, match="missing \\['gpu'\\]"):
        runtime.select_preset({"cpu": 1})


def test_seed_everything_repeats_random_draws():
    g1 = runtime.seed_everything(123)
    a = (torch.rand(3), torch.rand(3, generator=g1))
    g2 = runtime.seed_everything(123)
    b = (torch.rand(3), torch.rand(3, generator=g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError):
        runtime.seed_everything(-1)


def test_describe_names_preset_and_device():
    line = runtime.describe("cpu")
    assert "preset=cpu" in line and "device=" in line and "torch=" in line
