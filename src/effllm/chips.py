"""NVIDIA's data-centre chips against the US export rules' thresholds.

The rules of October 2022 and October 2023 (ECCN 3A090.a) measure a chip's arithmetic by its
*total processing performance*, TPP = 2 × MacTOPS × bit length, where MacTOPS counts
multiply-accumulates (two operations each) in trillions per second at the chip's densest rate.
For a chip's dense throughput in TOPS at bit length ``b`` that is simply TOPS × ``b``. The
specifications are shipped in ``effllm/data/chips.csv`` with a source per chip; the TPP is
computed here, never stored.
"""

from __future__ import annotations

import pandas as pd

from effllm.datafiles import read_csv

CHIP_COLUMNS = {
    "chip": "str",
    "year": "int",
    "dense_bf16_tflops": "float",
    "interconnect_gbps": "float",
    "interconnect_gbps_reported_low": "float?",
    "memory_bandwidth_gbps": "float",
    "source": "str",
    "note": "str",
}
BF16_BITS = 16
# 3A090.a of the October 2022 rule: TPP >= 4800 AND chip-to-chip I/O >= 600 GB/s (both).
TPP_THRESHOLD = 4800
INTERCONNECT_THRESHOLD_GBPS = 600
# The October 2023 rule dropped the interconnect test: TPP >= 4800 alone, or TPP >= 1600 with a
# performance density (TPP per mm² of die) of at least 5.92.
TPP_DENSITY_ALTERNATIVE = 1600
PERFORMANCE_DENSITY_THRESHOLD = 5.92


def total_processing_performance(dense_tops: float, bit_length: int) -> float:
    """TPP = 2 × MacTOPS × bit length = dense TOPS × bit length (one MAC is two operations).

    ``dense_tops``: throughput without structured sparsity, in tera-operations per second, at
    ``bit_length`` bits per operand.
    """
    if dense_tops < 0 or bit_length <= 0:
        raise ValueError(f"need dense_tops >= 0 and bit_length > 0, got {dense_tops}, {bit_length}")
    mac_tops = dense_tops / 2
    return 2 * mac_tops * bit_length


def controlled_in_2022(tpp: float, interconnect_gbps: float) -> bool:
    """Whether the October 2022 rule caught a chip: it had to reach both thresholds."""
    return tpp >= TPP_THRESHOLD and interconnect_gbps >= INTERCONNECT_THRESHOLD_GBPS


def controlled_in_2023(tpp: float) -> bool:
    """Whether the October 2023 rule caught a chip by TPP alone (the performance-density
    alternative needs a die area, which the shipped data do not hold)."""
    return tpp >= TPP_THRESHOLD


def load_chips() -> pd.DataFrame:
    """The shipped chip specifications (``effllm/data/chips.csv``), checked, with their BF16
    ``tpp`` and whether each rule caught them (``controlled_2022``, ``controlled_2023``)."""
    df = read_csv("chips.csv", CHIP_COLUMNS)
    if df["chip"].duplicated().any():
        raise ValueError(
            f"chips.csv: chips listed twice: {sorted(df['chip'][df['chip'].duplicated()])}"
        )
    low = df["interconnect_gbps_reported_low"]
    if (low >= df["interconnect_gbps"]).any():
        raise ValueError("chips.csv: a reported low interconnect figure must be below the main one")
    df["tpp"] = [total_processing_performance(t, BF16_BITS) for t in df["dense_bf16_tflops"]]
    df["controlled_2022"] = [
        controlled_in_2022(t, g) for t, g in zip(df["tpp"], df["interconnect_gbps"], strict=True)
    ]
    df["controlled_2023"] = [controlled_in_2023(t) for t in df["tpp"]]
    return df
