"""The data figures of Labs 1, 5 and 6, one function per figure.

A lab computes its numbers on the page and hands them to one call here, which draws the figure in
the course style (:func:`effllm.plotting.use_style`, called once by the lab) with its title, axis
labels and source line, and returns it; the lab glues it for the book and shows it. Keeping the
styling here leaves the lab's page to the analysis.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from effllm import capex, economics, markets
from effllm.plotting import COLORS, PALETTE, add_source

# ---------------------------------------------------------------------------------------------
# Lab 1: the training cost


def v3_cost_by_stage(cost: pd.DataFrame, usd_per_gpu_hour: float, total_cost: float) -> Figure:
    """Bars of the cost of each stage of V3's run (``cost``: economics.v3_training_cost)."""
    stages = cost[cost["stage"] != "total"]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    bars = ax.barh(stages["stage"], stages["cost_usd"] / 1e6, color=COLORS["deepseek"])
    ax.bar_label(bars, labels=[f"${v / 1e6:.3f}M" for v in stages["cost_usd"]], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel(f"cost, million USD (at ${usd_per_gpu_hour:.2f} per H800 GPU hour)")
    ax.set_title(f"DeepSeek-V3's final training run: ${total_cost / 1e6:.2f}M in rented GPU time")
    ax.set_xlim(0, stages["cost_usd"].max() / 1e6 * 1.2)
    ax.grid(axis="y", visible=False)
    add_source(
        fig,
        "DeepSeek-V3 Technical Report (arXiv:2412.19437), Table 1; the $2/GPU-hour rate is the "
        "report's assumption",
    )
    return fig


def mfu_against_peak(flops: float, gpu_hours: float, peak_flops: float, mfu: float) -> Figure:
    """The utilisation that ``flops`` in ``gpu_hours`` implies, for assumed peaks of 400 to 2,000
    TFLOP/s, with the preset's ``peak_flops`` (and its ``mfu``) marked."""
    peaks = np.linspace(400e12, 2000e12, 200)
    mfus = [economics.model_flops_utilisation(flops, gpu_hours, p) for p in peaks]
    fig, ax = plt.subplots()
    ax.plot(peaks / 1e12, np.array(mfus) * 100, color=COLORS["deepseek"])
    ax.axvline(peak_flops / 1e12, color=COLORS["highlight"], ls="--", lw=1)
    ax.annotate(
        f"assumed peak {peak_flops / 1e12:.0f} TFLOP/s\n-> MFU {mfu:.0%}",
        (peak_flops / 1e12, mfu * 100),
        xytext=(12, 20),
        textcoords="offset points",
    )
    ax.set_xlabel("assumed peak throughput per GPU (TFLOP/s)")
    ax.set_ylabel("implied utilisation (%)")
    ax.set_title("The utilisation you infer depends on the peak you assume")
    add_source(
        fig,
        "6·N·D with N = 37B, D = 14.8T and 2,664K GPU hours (DeepSeek-V3 report); peak throughput "
        "is an assumption",
    )
    return fig


def dense_counterfactual(
    moe_cost: float,
    dense_cost: float,
    moe_days: float,
    dense_days: float,
    ratio: float,
    cluster_gpus: int,
) -> Figure:
    """Pre-training cost (USD) and wall-clock days of V3 as built against a dense 671B model."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    labels = ["MoE: 37B active\n(V3 as built)", "dense: 671B\n(counterfactual)"]
    colors = [COLORS["moe"], COLORS["dense"]]
    for ax, values, unit, title in [
        (axes[0], [moe_cost / 1e6, dense_cost / 1e6], "million USD", "Pre-training cost"),
        (axes[1], [moe_days, dense_days], f"days on {cluster_gpus} H800s", "Wall-clock time"),
    ]:
        bars = ax.bar(labels, values, color=colors)
        ax.bar_label(bars, fmt="%.0f", padding=2)
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(axis="x", visible=False)
    fig.suptitle(
        f"Same 14.8T tokens, same utilisation: the dense model costs {ratio:.1f}x more",
        x=0.01,
        ha="left",
        fontweight="bold",
    )
    fig.tight_layout()
    add_source(fig, "computed with 6·N·D from the DeepSeek-V3 report's parameter and token counts")
    return fig


# ---------------------------------------------------------------------------------------------
# Lab 5: the market shock

GROUP_COLORS = {
    "chips": COLORS["chips"],
    "hyperscalers": COLORS["hyperscalers"],
    "indices": COLORS["index"],
}
GROUP_LABELS = {
    "chips": "chips",
    "hyperscalers": "chip buyers (hyperscalers)",
    "indices": "indices and ETFs",
}


def cross_section(cross: pd.DataFrame, source: str) -> Figure:
    """Each series' change on the day, coloured by group (``cross``: index tickers, columns
    ``group`` and ``change_pct``, in the order drawn top to bottom)."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    bars = ax.barh(
        [f"{markets.NAMES[t]} ({t})" for t in cross.index],
        cross["change_pct"],
        color=[GROUP_COLORS[g] for g in cross["group"]],
    )
    ax.bar_label(bars, labels=[f"{v:+.2f}%" for v in cross["change_pct"]], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(cross["change_pct"].min() * 1.25, 6)
    ax.set_xlabel("change from the close of Fri 24 Jan to the close of Mon 27 Jan 2025 (%)")
    ax.set_title("27 January 2025: chip makers fell hard, their biggest customers barely moved")
    ax.grid(axis="y", visible=False)
    ax.legend(
        handles=[Patch(color=GROUP_COLORS[g], label=GROUP_LABELS[g]) for g in GROUP_COLORS],
        loc="lower left",
    )
    add_source(fig, source)
    return fig


def expected_and_actual(peer_table: pd.DataFrame, study: markets.EventStudy, source: str) -> Figure:
    """Each series' actual return on the event day against the market model's expectation with
    its ±1.96 σ band (``peer_table``: index tickers; columns ``group``, ``actual_pct``,
    ``expected_pct``, ``band_pct``); ``study`` names the estimation window in the source line."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    ypos = np.arange(len(peer_table))
    ax.barh(
        ypos + 0.2,
        peer_table["actual_pct"],
        height=0.4,
        label="actual return",
        color=[GROUP_COLORS[g] for g in peer_table["group"]],
    )
    ax.barh(
        ypos - 0.2,
        peer_table["expected_pct"],
        height=0.4,
        color=COLORS["dense"],
        xerr=peer_table["band_pct"],
        error_kw={"ecolor": "#444444", "capsize": 2, "lw": 0.8},
        label="expected from the S&P 500 (±1.96 σ)",
    )
    ax.set_yticks(ypos, [f"{markets.NAMES[t]} ({t})" for t in peer_table.index])
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("return on 27 January 2025 (%)")
    ax.set_title("What the market model expected, and what happened")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower left")
    add_source(
        fig,
        f"{source}; market model fitted on {study.model.n} daily returns, "
        f"{study.estimation_start:%d %b %Y} to {study.estimation_end:%d %b %Y}",
    )
    return fig


def volume_bars(vol: pd.Series, usual: float, event: pd.Timestamp, source: str) -> Figure:
    """Daily share volume with the event day highlighted and the ``usual`` level dashed."""
    ratio = vol[event] / usual
    fig, ax = plt.subplots(figsize=(7, 3.4))
    colors = [COLORS["highlight"] if d == event else COLORS["index"] for d in vol.index]
    ax.bar(vol.index, vol / 1e6, width=0.8, color=colors)
    ax.axhline(usual / 1e6, color=COLORS["chips"], ls="--", lw=1)
    ax.text(
        0.99,
        0.55,
        f"dashed: median of the 20 trading days\nbefore 27 Jan, {usual / 1e6:.0f}M shares",
        transform=ax.transAxes,
        ha="right",
        fontsize=8,
        color=COLORS["chips"],
    )
    ax.annotate(
        f"27 Jan: {vol[event] / 1e6:.0f}M shares ({ratio:.1f}x)",
        (event, vol[event] / 1e6),
        xytext=(8, -4),
        textcoords="offset points",
        fontsize=8,
    )
    ax.set_ylabel("shares traded (millions)")
    ax.set_title("NVIDIA's trading volume, December 2024 to March 2025")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    ax.grid(axis="x", visible=False)
    add_source(fig, source)
    return fig


AFTERMATH_COLORS = {
    "NVDA": COLORS["chips"],
    "SOX": COLORS["highlight"],
    "IXIC": COLORS["deepseek"],
    "SPX": COLORS["index"],
}


def aftermath(
    close: pd.DataFrame,
    before: pd.Timestamp,
    event: pd.Timestamp,
    high_date: pd.Timestamp,
    peak: float,
    source: str,
) -> Figure:
    """Top: NVIDIA, the SOX, the Nasdaq and the S&P 500 indexed to the close of ``before``;
    bottom: NVIDIA's drawdown from its closing high of ``high_date`` (``peak``, USD)."""
    shown = list(AFTERMATH_COLORS)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.6), sharex=True, height_ratios=[3, 2])
    indexed = 100 * close[shown] / close.loc[before, shown]
    for t in shown:
        top.plot(
            indexed.index,
            indexed[t],
            label=markets.NAMES[t],
            color=AFTERMATH_COLORS[t],
            lw=2.2 if t == "NVDA" else 1.4,
        )
    top.axhline(100, color="black", lw=0.6)
    top.set_ylabel("close, 24 Jan 2025 = 100")
    top.set_title("NVIDIA against the chip sector and the market, Dec 2024 - Mar 2025")
    top.legend(loc="lower left", ncols=2)
    nvda = close["NVDA"]
    dd = 100 * markets.drawdown(nvda.loc[high_date:])
    bottom.fill_between(dd.index, dd, 0, color=COLORS["chips"], alpha=0.35)
    bottom.plot(dd.index, dd, color=COLORS["chips"], lw=1.2)
    bottom.set_ylabel("below the January high (%)")
    bottom.set_title(f"NVIDIA's drawdown from its closing high of ${peak:.2f} ({high_date:%d %b})")
    for ax in (top, bottom):
        ax.axvline(event, color=COLORS["highlight"], ls="--", lw=1)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    fig.tight_layout()
    add_source(fig, source)
    return fig


# ---------------------------------------------------------------------------------------------
# Lab 6: token economics

PROVIDER_COLORS = {
    "DeepSeek": COLORS["deepseek"],
    "OpenAI": COLORS["openai"],
    "Google": PALETTE[2],
    "Anthropic": PALETTE[3],
}


def workload_bills(
    bills: pd.Series,
    ratio_list: float,
    ratio_offpeak: float,
    requests: int,
    in_tokens: int,
    out_tokens: int,
) -> Figure:
    """A month's bill for one workload under each price schedule (``bills``: three OpenAI rows,
    then three DeepSeek rows), on a log scale."""
    colors = [COLORS["openai"]] * 3 + [COLORS["deepseek"]] * 3
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.barh(bills.index, bills.values, color=colors)
    ax.bar_label(bars, labels=[f"${v:,.0f}" for v in bills.values], padding=3)
    ax.set_xscale("log")
    ax.set_xlim(bills.min() / 2, bills.max() * 4)
    ax.invert_yaxis()
    ax.set_xlabel("USD per month (log scale)")
    ax.set_title(
        f"One workload, o1 vs R1: {ratio_list:.1f}x at list prices, {ratio_offpeak:.0f}x at best"
    )
    ax.grid(axis="y", visible=False)
    add_source(
        fig,
        f"{requests:,} requests of {in_tokens:,} input and {out_tokens:,} output tokens at list "
        "prices (effllm/data/api_prices.csv: DeepSeek API docs, simonw/llm-prices)",
    )
    return fig


# Labels placed left of their point, to avoid overlaps.
_LEFT_LABELS = {"DeepSeek-V3 (promo)", "GPT-4o"}


def capability_price(
    frontier: pd.Series, timeline: pd.DataFrame, gpt4_mmlu: float, drop_factor: float
) -> Figure:
    """The cheapest GPT-4-level price over time (a step line) and every model's blended price
    (``timeline``: one row per price with ``valid_from``, ``blended_usd_per_m``, ``gpt4_level``,
    ``provider``, ``model`` and ``tier``)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.step(
        frontier.index,
        frontier.values,
        where="post",
        color=COLORS["highlight"],
        lw=2.2,
        label=f"cheapest with MMLU >= {gpt4_mmlu:.1f} (GPT-4, 2023)",
    )
    labels: dict[tuple, list[str]] = {}  # models launched on the same day at one price share one
    for r in timeline.itertuples():
        filled = bool(r.gpt4_level)
        ax.scatter(
            r.valid_from,
            r.blended_usd_per_m,
            s=40,
            zorder=3,
            color=PROVIDER_COLORS[r.provider] if filled else "white",
            edgecolor=PROVIDER_COLORS[r.provider],
            lw=1.5,
        )
        name = r.model + (" (promo)" if r.tier == "promotional" else "")
        labels.setdefault((r.valid_from, r.blended_usd_per_m), []).append(name)
    for (day, price), names in labels.items():
        text = " / ".join(dict.fromkeys(names))
        left = text in _LEFT_LABELS
        ax.annotate(
            text,
            (day, price),
            xytext=(-5 if left else 5, -3 if left else 4),
            ha="right" if left else "left",
            textcoords="offset points",
            fontsize=7.5,
        )
    ax.set_yscale("log")
    ax.set_yticks([0.1, 0.3, 1, 3, 10, 30], ["0.1", "0.3", "1", "3", "10", "30"])
    ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=[1, 7]))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    ax.set_ylabel("USD per million tokens, 3:1 input:output blend (log)")
    ax.set_xlabel("date the price is first documented")
    ax.set_title(f"The price of GPT-4-level capability fell about {drop_factor:.0f}x in two years")
    ax.scatter([], [], color="grey", label="filled: scores >= GPT-4 on MMLU")
    ax.scatter([], [], color="white", edgecolor="grey", label="hollow: below, or no score shipped")
    ax.legend(loc="lower left", fontsize=8)
    add_source(
        fig,
        "list prices from effllm/data/api_prices.csv; MMLU from the GPT-4 report, the DeepSeek-R1 "
        "report and openai/simple-evals (effllm/data/mmlu_scores.csv). One benchmark is a coarse "
        "filter",
    )
    return fig


def cot_bill(
    cot: np.ndarray,
    o1_curve: Sequence[float],
    r1_curve: Sequence[float],
    gpt4o_direct: float,
    v3_direct: float,
    breakeven_cot: float,
    question_tokens: int,
    answer_tokens: int,
) -> Figure:
    """USD per 1,000 questions against the reasoning tokens per question, for o1 and R1, with
    GPT-4o and V3 answering directly as dashed lines."""
    fig, ax = plt.subplots()
    ax.plot(cot / 1000, o1_curve, color=COLORS["openai"], label="o1, with reasoning")
    ax.plot(cot / 1000, r1_curve, color=COLORS["deepseek"], label="DeepSeek-R1, with reasoning")
    ax.axhline(
        gpt4o_direct, color=COLORS["openai"], ls="--", lw=1.2, label="GPT-4o, answering directly"
    )
    ax.axhline(
        v3_direct,
        color=COLORS["deepseek"],
        ls="--",
        lw=1.2,
        label="DeepSeek-V3, answering directly",
    )
    ax.axvline(breakeven_cot / 1000, color=COLORS["highlight"], ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("reasoning tokens per question (thousands)")
    ax.set_ylabel("USD per 1,000 questions (log)")
    ax.set_title("Thinking is billed as output: the chain of thought sets the price")
    ax.set_ylim(0.5, 3e4)  # headroom for the legend
    ax.legend(loc="upper left", ncols=2, fontsize=8)
    add_source(
        fig,
        f"{question_tokens:,} input and {answer_tokens} answer tokens per question at list prices "
        "(effllm/data/api_prices.csv); reasoning lengths are illustrative",
    )
    return fig


def jevons(eps: np.ndarray, multiplier: Sequence[float], quantity: Sequence[float]) -> Figure:
    """Total spending and tokens bought after a 10x price cut, against the price elasticity."""
    fig, ax = plt.subplots()
    ax.plot(
        eps, multiplier, color=COLORS["hyperscalers"], label="total spending (and compute used)"
    )
    ax.plot(eps, quantity, color=COLORS["index"], ls="--", label="tokens bought")
    ax.axhline(1, color="black", lw=0.8)
    ax.axvline(1, color=COLORS["highlight"], ls=":", lw=1.2)
    ax.annotate(
        "elasticity 1:\nspending unchanged",
        (1, 1),
        xytext=(12, 40),
        textcoords="offset points",
        arrowprops={"arrowstyle": "->", "lw": 0.8},
    )
    ax.set_yscale("log")
    ax.set_xlabel("price elasticity of demand, ε")
    ax.set_ylabel("after / before a 10x price cut (log)")
    ax.set_title("A 10x cheaper token raises total spending only if ε > 1")
    ax.legend(loc="upper left")
    add_source(fig, "constant-elasticity demand Q = A·P^(−ε), computed (effllm.pricing)")
    return fig


CAPEX_COLORS = dict(
    zip(capex.COMPANIES, [PALETTE[0], PALETTE[2], PALETTE[4], PALETTE[3]], strict=True)
)


def capex_stack(
    table: pd.DataFrame,
    totals: pd.Series,
    low: pd.Series,
    high: pd.Series,
    unverified: set[tuple[str, int]],
) -> Figure:
    """The four companies' capex stacked by year (``table``: index years, one column per
    company), the 2026 guidance range as an error bar, hatched where a figure is unverified."""
    years = list(table.index)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    bottom = np.zeros(len(years))
    for company in capex.COMPANIES:
        values = table[company].to_numpy()
        for i, year in enumerate(years):
            ax.bar(
                str(year),
                values[i],
                bottom=bottom[i],
                color=CAPEX_COLORS[company],
                hatch="///" if (company, year) in unverified else None,
                edgecolor="white",
                lw=0.5,
                label=company if i == 0 else None,
            )
        bottom += values
    ax.errorbar(
        ["2026"],
        [totals[2026]],
        yerr=[[totals[2026] - low[2026]], [high[2026] - totals[2026]]],
        color="black",
        capsize=4,
        lw=1,
    )
    for i, year in enumerate(years):
        ax.text(i, high[year] + 8, f"${totals[year]:.0f}bn", ha="center", fontsize=9)
    ax.bar(
        ["2026"],
        [0],
        color="white",
        edgecolor="grey",
        hatch="///",
        label="guidance, unverified (secondary)",
    )
    ax.set_xticks(range(4), ["2023", "2024", "2025", "2026\n(MSFT reported;\nothers guidance)"])
    ax.set_ylabel("capital expenditure, USD bn")
    ax.set_title(
        f"Four companies' capex: \\${totals[2023]:.0f}bn (2023) to \\${totals[2025]:.0f}bn (2025)"
    )
    ax.legend(loc="upper left")
    ax.grid(axis="x", visible=False)
    add_source(
        fig,
        "10-K filings via heliar-k/market-base (effllm/data/capex.csv). Cash purchases of property "
        "and equipment; Microsoft's fiscal year ends 30 June and excludes finance leases; Amazon "
        "gross; Meta 2026 is guidance on its own measure",
    )
    return fig


def revenue_check(totals: pd.Series, seats: float, revenue_bn: float) -> Figure:
    """ILLUSTRATIVE: subscription revenue against paying seats at four prices, with the 2025 and
    2026 capex as lines and the lab's example (``seats``, ``revenue_bn``) marked."""
    seat_grid = np.logspace(7, 9.6, 100)
    fig, ax = plt.subplots()
    for i, price in enumerate([10, 20, 50, 200]):
        ax.plot(
            seat_grid / 1e6,
            [capex.subscription_revenue_usd_bn(s, price) for s in seat_grid],
            color=PALETTE[i],
            label=f"${price}/month",
        )
    for year, ls in [(2025, "--"), (2026, ":")]:
        ax.axhline(totals[year], color="black", ls=ls, lw=1)
        ax.text(
            seat_grid[0] / 1e6, totals[year] * 1.08, f"{year} capex, four companies", fontsize=8
        )
    ax.scatter([seats / 1e6], [revenue_bn], color=COLORS["highlight"], zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("paying seats (millions, log)")
    ax.set_ylabel("subscription revenue, USD bn per year (log)")
    ax.set_title("ILLUSTRATIVE: how many subscribers would match a year of capex?")
    ax.legend(loc="lower right", title="price per seat")
    add_source(
        fig,
        "illustrative arithmetic (seats x price x 12), not reported revenue; capex from "
        "effllm/data/capex.csv",
    )
    return fig


def serving_cost(
    active_params: float,
    total_params: float,
    peak_flops: float,
    usd_per_gpu_hour: float,
    utilisation: float,
    list_prices: dict[str, float],
) -> Figure:
    """Compute cost per million generated tokens against utilisation, for a sparse model of
    ``active_params`` and a dense one of ``total_params``, with ``list_prices`` (name: USD per
    million output tokens) as dashed lines and the assumed ``utilisation`` dotted."""
    util = np.linspace(0.01, 0.6, 200)
    fig, ax = plt.subplots()
    for params, color, label in [
        (active_params, COLORS["moe"], "MoE: 37B active of 671B"),
        (total_params, COLORS["dense"], "dense: 671B"),
    ]:
        costs = [
            economics.serving_cost_per_million_tokens(
                economics.tokens_per_second_per_gpu(params, peak_flops, u), usd_per_gpu_hour
            )
            for u in util
        ]
        ax.plot(util * 100, costs, color=color, label=label)
    for name, price in list_prices.items():
        ax.axhline(price, color=COLORS["deepseek"], ls="--", lw=1)
        ax.text(60, price * 1.07, name, ha="right", fontsize=8, color=COLORS["deepseek"])
    ax.axvline(utilisation * 100, color=COLORS["highlight"], ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("utilisation of peak during generation (%)")
    ax.set_ylabel("compute cost, USD per million output tokens (log)")
    ax.set_title("Sparse is cheaper to serve: 18x fewer FLOPs per generated token")
    ax.legend(loc="upper right")
    add_source(
        fig,
        "2 FLOPs per active parameter per token; 989 TFLOP/s peak (assumed, UNVERIFIED for the "
        "H800); $2/GPU-hour (V3 report); list prices from effllm/data/api_prices.csv",
    )
    return fig
