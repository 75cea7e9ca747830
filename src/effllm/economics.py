"""Cost arithmetic for training and serving: GPU hours, dollars, FLOPs and utilisation.

The numbers a lab feeds in come from the DeepSeek-V3 technical report (arXiv:2412.19437), kept
in :mod:`effllm.deepseek_v3` (37B activated parameters, 14.8T training tokens), and the GPU hours
of its Table 1 (shipped as ``effllm/data/deepseek_v3_training_cost.csv``). The serving functions
turn the same quantities (parameters touched per token, a peak throughput, a utilisation, a
GPU-hour price) into a cost per million generated tokens.
"""

from __future__ import annotations

import pandas as pd

from effllm import deepseek_v3 as v3
from effllm.datafiles import read_csv
from effllm.validate import positive, positive_fraction

# Assumption, not a confirmed figure: the H800's dense BF16 tensor peak. Secondary sources put it
# at about 989 TFLOP/s (the same die as the H100 SXM); no primary NVIDIA source was found.
# Labs make it an explicit, changeable parameter.
H800_BF16_DENSE_PEAK_FLOPS = 989e12

SECONDS_PER_HOUR = 3600.0


def training_cost_usd(gpu_hours: float, usd_per_gpu_hour: float) -> float:
    """Rental cost of ``gpu_hours`` at ``usd_per_gpu_hour``."""
    return positive("gpu_hours", gpu_hours) * positive("usd_per_gpu_hour", usd_per_gpu_hour)


def training_flops(
    active_params: float, tokens: float, flops_per_param_token: float = 6.0
) -> float:
    """Training compute by the standard estimate C ≈ 6·N·D.

    Each token costs about 2 FLOPs per parameter in the forward pass and 4 in the backward pass.
    For a mixture of experts, N is the *activated* parameter count: a token only passes through
    the experts its router picks. The estimate leaves out attention's own FLOPs (which grow with
    context length) and any extra heads such as multi-token prediction.
    """
    return (
        positive("flops_per_param_token", flops_per_param_token)
        * positive("active_params", active_params)
        * positive("tokens", tokens)
    )


def model_flops_utilisation(flops: float, gpu_hours: float, peak_flops_per_gpu: float) -> float:
    """Fraction of the GPUs' peak throughput that ``flops`` used over ``gpu_hours`` (the MFU)."""
    capacity = (
        positive("gpu_hours", gpu_hours)
        * SECONDS_PER_HOUR
        * positive("peak_flops_per_gpu", peak_flops_per_gpu)
    )
    return positive("flops", flops) / capacity


def gpu_hours_for(flops: float, peak_flops_per_gpu: float, utilisation: float) -> float:
    """GPU hours needed to deliver ``flops`` at ``utilisation`` of ``peak_flops_per_gpu``."""
    u = positive_fraction("utilisation", utilisation)
    return positive("flops", flops) / (
        positive("peak_flops_per_gpu", peak_flops_per_gpu) * u * SECONDS_PER_HOUR
    )


def v3_training_cost(usd_per_gpu_hour: float = v3.USD_PER_GPU_HOUR) -> pd.DataFrame:
    """DeepSeek-V3's training cost by stage (Table 1 of the report), with a total row.

    Returns columns ``stage``, ``h800_gpu_hours``, ``cost_usd``.
    """
    df = read_csv("deepseek_v3_training_cost.csv", {"stage": "str", "h800_gpu_hours": "float"})
    if (df["h800_gpu_hours"] <= 0).any():
        raise ValueError("deepseek_v3_training_cost.csv has a non-positive GPU-hour count")
    total = pd.DataFrame({"stage": ["total"], "h800_gpu_hours": [df["h800_gpu_hours"].sum()]})
    df = pd.concat([df, total], ignore_index=True)
    df["cost_usd"] = [training_cost_usd(h, usd_per_gpu_hour) for h in df["h800_gpu_hours"]]
    return df


def decode_flops_per_token(active_params: float, flops_per_param_token: float = 2.0) -> float:
    """Forward-pass compute to generate one token: about 2 FLOPs (a multiply and an add) per
    parameter the token passes through. For a mixture of experts that is the *activated* count.

    Like 6·N·D, this leaves out attention over the context, which grows with its length.
    """
    return positive("flops_per_param_token", flops_per_param_token) * positive(
        "active_params", active_params
    )


def tokens_per_second_per_gpu(
    active_params: float, peak_flops_per_gpu: float, utilisation: float
) -> float:
    """Generated tokens per second one GPU sustains if the arithmetic were the only limit.

    ``utilisation`` is the fraction of peak actually delivered. Generation is usually limited by
    memory traffic rather than arithmetic, so realistic values are well below training's.
    """
    u = positive_fraction("utilisation", utilisation)
    return (
        positive("peak_flops_per_gpu", peak_flops_per_gpu)
        * u
        / decode_flops_per_token(active_params)
    )


def serving_cost_per_million_tokens(tokens_per_second: float, usd_per_gpu_hour: float) -> float:
    """USD to generate one million tokens at ``tokens_per_second`` per GPU and a GPU-hour price."""
    tokens_per_hour = positive("tokens_per_second", tokens_per_second) * SECONDS_PER_HOUR
    return positive("usd_per_gpu_hour", usd_per_gpu_hour) / tokens_per_hour * 1e6
