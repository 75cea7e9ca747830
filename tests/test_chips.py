"""The chips' specifications (effllm/data/chips.csv) and the export rules' TPP (effllm.chips)."""

import re
from pathlib import Path

import pytest

from effllm import chips

ROOT = Path(__file__).resolve().parents[1]
BIB_KEYS = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book/references.bib").read_text(), re.M))


def test_tpp_is_two_mac_tops_times_the_bit_length():
    # One MAC is two operations: 156 dense TMACs/s at 16 bits is 312 TOPS, TPP 4,992.
    assert chips.total_processing_performance(312, 16) == 2 * 156 * 16 == 4992
    assert chips.total_processing_performance(296, 8) == chips.total_processing_performance(148, 16)
    with pytest.raises(ValueError):
        chips.total_processing_performance(312, 0)


def test_the_2022_rule_needs_both_thresholds_and_the_2023_rule_only_tpp():
    assert chips.controlled_in_2022(4800, 600)
    assert not chips.controlled_in_2022(4800, 599.9)  # the A800 and H800 route
    assert not chips.controlled_in_2022(4799, 900)
    assert chips.controlled_in_2023(4800) and not chips.controlled_in_2023(4799)


def test_shipped_chips_load_with_a_source_each_and_tpp_computed():
    df = chips.load_chips().set_index("chip")
    assert {"A100", "A800", "H100", "H800", "H20"} <= set(df.index)
    assert all(s in BIB_KEYS for s in df["source"]), "every chip's source must be in the book"
    assert (df["tpp"] == df["dense_bf16_tflops"] * 16).all()
    assert df.loc["A100", "tpp"] == 4992 and df.loc["H20", "tpp"] == 2368


def test_the_china_parts_sit_where_the_chapter_says():
    df = chips.load_chips().set_index("chip")
    # Cut below the 2022 bandwidth line, caught by the 2023 rule.
    for chip in ("A800", "H800"):
        assert not df.loc[chip, "controlled_2022"] and df.loc[chip, "controlled_2023"], chip
    for chip in ("A100", "H100"):
        assert df.loc[chip, "controlled_2022"] and df.loc[chip, "controlled_2023"], chip
    # Designed under the 2023 rule: below TPP 4,800, with the H100's interconnect.
    assert not df.loc["H20", "controlled_2023"]
    assert df.loc["H20", "interconnect_gbps"] == df.loc["H100", "interconnect_gbps"]


def test_a_chip_listed_twice_is_refused(fake_data_package):
    row = "H20,2024,148,900,,4000,tomshardware2024h20,x\n"
    (fake_data_package / "chips.csv").write_text(",".join(chips.CHIP_COLUMNS) + "\n" + row + row)
    with pytest.raises(ValueError, match="listed twice"):
        chips.load_chips()
