"""The book's diagrams (effllm.diagrams), their data and the committed SVGs (tools/figures.py)."""

import re
from pathlib import Path

import figures
import matplotlib
import matplotlib.pyplot as plt
import pytest

from effllm import deepseek_v3 as v3
from effllm import diagrams, presets
from effllm.attention import kv_cache_values_per_token
from effllm.plotting import describe

ROOT = Path(__file__).resolve().parents[1]
BIB_KEYS = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book/references.bib").read_text(), re.M))


def texts(fig) -> str:
    """Every piece of text drawn in ``fig``, joined."""
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


# The words each diagram must show: its labelled parts.
PARTS = {
    "moe_layer": ["router", "top-$K_r$", "shared expert", "routed experts", "g_{i,t}"],
    "kv_cache_to_scale": ["MHA", "GQA", "MQA", "MLA", "latent", "RoPE key"],
    "mla_projections": ["latent", "RoPE key", "W^{DKV}", "W^{UK}", "absorbed form"],
    "grpo_step": ["prompt", "samples", "reward", "advantage", "clip", "KL"],
    "training_cost_arithmetic": ["pre-training", "assumed rental", "not in the bill"],
    "timeline": ["DeepSeek-V3", "DeepSeek-R1", "App Store", "H20", "Nature"],
    "rules_and_releases": ["H800 licence", "DeepSeek-V3", "export"],
    "capex_by_company": ["Microsoft", "Alphabet", "Amazon", "Meta", "guidance"],
    "press_claims": ["closed at $118.58", "printed: wrong", "at the close"],
    "chips_against_rules": ["H800", "H20", "A800", "Oct 2022 rule", "Oct 2023 rule", "9 Apr 2025"],
    "fp8_block_scaling": ["1 × 128 tile", "128 × 128 block", "E4M3", "FP32 total", "448"],
    "event_study_steps": ["estimation window", "expected return", "abnormal return", "CAR"],
    "token_economics": ["active parameters", "GPU-hour price", "per million", "R1's list price"],
    "mtp": ["MTP module", "RMSNorm", "(shared)", "TRM", "drafts", "KV cache", "same weights"],
    "distillation": ["teacher GRPO", "keep if correct", "SFT on kept", "GRPO directly", "logits"],
}


@pytest.mark.parametrize("name", list(diagrams.FIGURES))
def test_each_diagram_has_a_title_its_parts_and_a_source(name):
    fig = diagrams.FIGURES[name]()
    try:
        words = texts(fig)
        assert describe(fig), f"{name} has no title"
        assert "Source: " in words, f"{name} names no source"
        for part in PARTS[name]:
            assert part in words, f"{name} does not show {part!r}"
    finally:
        plt.close(fig)


def test_every_diagram_is_listed_with_its_parts():
    assert set(PARTS) == set(diagrams.FIGURES)


def test_moe_diagram_prints_the_sizes_of_the_lab_and_of_v3():
    lab, cfg = presets.PRESETS["moe"]["cpu"], v3.CONFIG
    fig = diagrams.moe_layer()
    words = texts(fig)
    plt.close(fig)
    assert f"{cfg.dim:,}" in words and f"{lab.d_model}" in words
    assert f"{lab.moe.n_routed} | {cfg.n_routed_experts}" in words
    assert f"{lab.moe.top_k} | {cfg.n_activated_experts}" in words


def test_cache_bars_are_drawn_to_the_library_s_scale():
    fig = diagrams.kv_cache_to_scale()
    v3_panel = fig.axes[0]
    widths: dict[float, float] = {}
    for bar in v3_panel.patches:
        y = round(bar.get_y() + bar.get_height() / 2, 6)
        widths[y] = widths.get(y, 0.0) + bar.get_width()
    plt.close(fig)
    variants = diagrams.attention_variants_v3()
    expected = [kv_cache_values_per_token(variants[n], v3.CONFIG.dim) for n in variants]
    # Rows are drawn top to bottom in the order of the variants: MHA at the top.
    assert [widths[y] for y in sorted(widths, reverse=True)] == expected
    assert expected[-1] == v3.CONFIG.kv_lora_rank + v3.CONFIG.qk_rope_head_dim


def test_timeline_is_dated_in_order_and_every_event_has_a_source():
    df = diagrams.load_timeline()
    assert df["date"].is_monotonic_increasing
    for source in df["source"]:
        assert source in BIB_KEYS or source.startswith("https://"), f"unknown source {source!r}"
    assert set(df["category"]) == set(diagrams.TIMELINE_CATEGORIES)


def test_timeline_dates_are_the_ones_the_chapters_give():
    chapters = " ".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    chapters = re.sub(r"\s+", " ", chapters)
    for day in diagrams.load_timeline()["date"]:
        spelled = (f"{day.day} {day:%b %Y}", f"{day.day} {day:%B %Y}", f"{day.day} {day:%B}")
        assert any(s in chapters for s in spelled), f"no chapter gives the date {day:%Y-%m-%d}"


def test_timeline_rejects_events_out_of_order(fake_data_package):
    (fake_data_package / "timeline.csv").write_text(
        "date,label,event,category,source\n"
        "2025-01-27,b,later,markets and prices,marketbase2025\n"
        "2024-12-26,a,earlier,DeepSeek releases,deepseekai2024v3\n"
    )
    with pytest.raises(ValueError, match="date order"):
        diagrams.load_timeline()


def test_press_claims_are_judged_against_the_closes():
    claims = diagrams.load_claims()
    assert all(source in BIB_KEYS for source in claims["source"])
    verdict = dict(zip(claims["claim"], claims["verdict"], strict=True))
    assert verdict["closed at $118.42"] == "right"
    assert verdict["closed at $118.58"] == verdict["nearly $1 trillion"] == "wrong"
    lost = claims.loc[claims["quantity"] == "value_lost_usd_bn", "value"]
    assert lost.nunique() == 1 and 592 < lost.iloc[0] < 593  # (142.62 - 118.42) x 24,477M


def test_committed_svgs_are_up_to_date():
    drawn = figures.drawn_with()
    if drawn != {matplotlib.__version__}:  # the same figure, other bytes: nothing to compare
        pytest.skip(
            f"book/images was drawn with matplotlib {sorted(drawn)}, not {matplotlib.__version__}"
        )
    assert figures.stale() == [], "run python tools/figures.py and commit book/images"


def test_rendering_is_deterministic_and_the_check_sees_a_change(tmp_path):
    name = "training_cost_arithmetic"
    first = figures.render(name)
    assert first == figures.render(name) and b"<dc:date>" not in first
    (tmp_path / f"{name}.svg").write_bytes(first.replace(b"GPU hours", b"GPU days", 1))
    assert name in figures.stale(tmp_path)


def test_every_svg_in_the_book_is_used_and_has_alt_text_and_a_caption():
    pages = {p.name: p.read_text() for p in (ROOT / "book").glob("*.md")}
    used = set()
    for page, text in pages.items():
        for block in re.findall(r"```\{figure\} (images/\S+\.svg)\n(.*?)```", text, re.S):
            path, body = block
            used.add(Path(path).stem)
            assert re.search(r"^:alt: \S.{20,}$", body, re.M), f"{page}: {path} has no alt text"
            caption = [line for line in body.splitlines() if line and not line.startswith(":")]
            assert caption, f"{page}: {path} has no caption"
    assert used == set(diagrams.FIGURES)


STORY = ["january-2025", "techniques", "geopolitics", "bill", "market", "economics", "press"]


@pytest.mark.parametrize("page", STORY)
def test_every_story_chapter_shows_a_figure_and_opens_in_short(page):
    text = (ROOT / "book" / f"{page}.md").read_text()
    assert "```{figure}" in text or "```{glue}" in text
    title, rest = text.split("\n", 2)[0], text.split("\n", 2)[2]
    assert title.startswith("# ") and rest.startswith("```{admonition} In short\n")
    box = rest.split("```", 2)[1]
    assert len([line for line in box.splitlines() if line.startswith("- ")]) == 3


def test_techniques_shows_at_least_four_concept_diagrams():
    text = (ROOT / "book" / "techniques.md").read_text()
    assert text.count("```{figure} images/") >= 4


def test_fp8_diagram_prints_v3_s_block_and_the_e4m3_range():
    from effllm import fp8

    words = texts(fig := diagrams.fp8_block_scaling())
    plt.close(fig)
    assert f"1 × {fp8.BLOCK} tile" in words and f"{fp8.BLOCK} × {fp8.BLOCK} block" in words
    assert f"{v3.CONFIG.dim // fp8.BLOCK} tiles per token" in words and "448" in words


def test_event_study_diagram_shows_the_library_s_numbers():
    from effllm import markets

    P = presets.PRESETS["market_shock"]["cpu"]
    returns = markets.simple_returns(markets.closes(markets.load_prices()))
    study = markets.event_study(returns, "NVDA", P.market, P.event, window=P.window)
    words = texts(fig := diagrams.event_study_steps())
    plt.close(fig)
    abnormal = f"{100 * study.event['abnormal']:+.2f}%".replace("-", "−")
    assert abnormal in words and f"{study.model.beta:.2f}" in words
    assert abs(study.event["abnormal"] - (study.event["actual"] - study.event["expected"])) < 1e-12


def test_token_economics_diagram_adds_up_to_the_library_s_cost():
    from effllm import economics

    P = presets.PRESETS["token_economics"]["cpu"]
    tps = economics.tokens_per_second_per_gpu(
        v3.ACTIVE_PARAMS, economics.H800_BF16_DENSE_PEAK_FLOPS, P.serving_utilisation
    )
    cost = economics.serving_cost_per_million_tokens(tps, v3.USD_PER_GPU_HOUR)
    words = texts(fig := diagrams.token_economics())
    plt.close(fig)
    assert f"${cost:.2f}" in words and f"{tps:,.0f}" in words


def test_distillation_diagram_prints_the_presets_sizes():
    lab = presets.PRESETS["distillation"]["cpu"]
    fig = diagrams.distillation()
    try:
        words = texts(fig)
    finally:
        plt.close(fig)
    for shown in (
        f"width {lab.teacher.model.d_model}",
        f"width {lab.student.d_model}",
        f"k = {lab.samples_per_prompt}",
        f"{lab.sft_steps} steps",
        f"τ = {lab.temperature:g}",
    ):
        assert shown in words, shown
