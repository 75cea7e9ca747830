"""The book's concept diagrams and story figures, drawn from the course's own code and data.

Each public function returns a matplotlib :class:`~matplotlib.figure.Figure` in the course style
(:mod:`effllm.plotting`), with a title, labelled parts and a source line. Sizes are read from the
objects the labs use (:data:`effllm.presets.PRESETS`, :data:`effllm.deepseek_v3.CONFIG`) and
figures from the shipped data, so a diagram cannot drift from the code it explains.
``tools/figures.py`` writes them to ``book/images/*.svg``; :data:`FIGURES` lists them by file name.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from effllm import capex, chips, economics, fp8, markets, presets, pricing, rl_tasks
from effllm import deepseek_v3 as v3
from effllm.attention import AttentionConfig, kv_cache_values_per_token, resolve
from effllm.datafiles import read_csv
from effllm.grpo import group_advantages
from effllm.plotting import COLORS, PALETTE, add_source, use_style

TIMELINE_COLUMNS = {
    "date": "date",
    "label": "str",
    "event": "str",
    "category": "str",
    "source": "str",
}
TIMELINE_CATEGORIES = ("export rules", "DeepSeek releases", "markets and prices")
CATEGORY_COLORS = dict(
    zip(
        TIMELINE_CATEGORIES,
        (COLORS["chips"], COLORS["deepseek"], COLORS["hyperscalers"]),
        strict=True,
    )
)
CLAIM_COLUMNS = {
    "quantity": "str",
    "ticker": "str",
    "outlet": "str",
    "claim": "str",
    "printed": "str",
    "qualifier": "str",
    "source": "str",
}
VERDICT_COLORS = {"right": PALETTE[2], "close": PALETTE[4], "wrong": PALETTE[1]}
V3_GQA_GROUPS = 8  # a hypothetical GQA of V3's shape, as in Lab 3
EVENT = pd.Timestamp("2025-01-27")  # the Monday of the sell-off
BEFORE = pd.Timestamp("2025-01-24")  # the Friday before it
_INK = "#333333"
_PALE = "#F2F2F2"


# ---------------------------------------------------------------------------------------------
# Drawing helpers


def _canvas(size: tuple[float, float], xmax: float, ymax: float) -> tuple[Figure, Axes]:
    """A figure with one axes in box coordinates (0..xmax, 0..ymax), no ticks or grid."""
    use_style()
    fig, ax = plt.subplots(figsize=size)
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.axis("off")
    return fig, ax


def _box(
    ax: Axes,
    xy: tuple[float, float],
    w: float,
    h: float,
    text: str,
    color: str = _INK,
    fill: str = "white",
    size: float = 9,
    weight: str = "normal",
) -> tuple[float, float, float, float]:
    """A rounded box centred on ``xy`` with ``text`` inside; returns (left, bottom, w, h)."""
    x, y = xy[0] - w / 2, xy[1] - h / 2
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12", fc=fill, ec=color, lw=1.2
        )
    )
    ax.text(*xy, text, ha="center", va="center", fontsize=size, color=_INK, weight=weight)
    return x, y, w, h


def _arrow(
    ax: Axes, start: tuple[float, float], end: tuple[float, float], color: str = _INK, **kw
) -> None:
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color=color, lw=1.1, **kw)
    )


def _finish(fig: Figure, title: str, x: float, top: float, source: str) -> Figure:
    """Title a chart in the course's way, lay it out below the title, and name its source."""
    fig.suptitle(title, x=x, ha="left", fontweight="bold", fontsize=11)
    if top < 1:
        fig.tight_layout(rect=(0, 0, 1, top))  # room for a legend between title and axes
    else:
        fig.tight_layout()
    add_source(fig, source)
    return fig


def _n(x: float) -> str:
    return f"{x:,.0f}"


# ---------------------------------------------------------------------------------------------
# (a) The MoE layer


def moe_layer() -> Figure:
    """A transformer block whose feed-forward layer is DeepSeekMoE, with Lab 2's and V3's sizes.

    The router scores every routed expert, keeps the top K_r, and the layer adds the shared
    experts' outputs and the gate-weighted routed outputs to the residual stream.
    """
    lab = presets.PRESETS["moe"]["cpu"]
    moe, cfg = lab.moe, v3.CONFIG
    fig, ax = _canvas((9.6, 6.2), 14, 9.0)
    ax.set_title("An MoE layer routes each token to a few experts", pad=4)

    # The block, left: token -> attention -> MoE, each added to the residual stream.
    bx = 1.75
    _box(ax, (bx, 0.7), 3.1, 0.6, "token's hidden state $h_t$", size=8.5)
    _box(
        ax, (bx, 2.4), 3.1, 0.9, "RMSNorm, attention\n(MLA in V3), + residual", size=8.5, fill=_PALE
    )
    _box(
        ax,
        (bx, 4.3),
        3.1,
        0.9,
        "RMSNorm, MoE layer,\n+ residual",
        color=COLORS["moe"],
        weight="bold",
        size=8.5,
    )
    _box(ax, (bx, 6.1), 3.1, 0.6, "to the next block", size=8.5)
    for y0, y1 in ((1.0, 1.95), (2.85, 3.85), (4.75, 5.8)):
        _arrow(ax, (bx, y0), (bx, y1))
    # The zoom: the MoE box of the block, drawn out on the right.
    ax.add_patch(Rectangle((3.75, 0.15), 10.15, 7.75, fc="none", ec=COLORS["moe"], lw=0.8, ls="--"))
    _arrow(ax, (3.3, 4.3), (3.75, 4.3), color=COLORS["moe"])
    ax.text(3.9, 7.6, "inside the MoE layer", fontsize=8, color=COLORS["moe"], style="italic")

    _box(ax, (6.0, 0.75), 3.4, 0.6, "$u_t$: one token, $d$ numbers", size=8.5)
    _arrow(ax, (6.0, 1.05), (6.0, 1.75))
    _box(
        ax,
        (6.0, 2.25),
        3.8,
        0.95,
        f"router: scores $s_{{i,t}}=\\sigma(u_t^\\top e_i)$\nfor all $N_r$ = {moe.n_routed}"
        f" | {cfg.n_routed_experts} routed experts",
        color=COLORS["highlight"],
        size=8.5,
    )
    # The scores as a small bar chart, the top K_r highlighted.
    n_show = 12
    scores = np.random.default_rng(3).uniform(0.15, 0.9, n_show)
    top = np.argsort(scores)[-moe.top_k :]
    left, width = 4.3, 3.4
    for i, s in enumerate(scores):
        ax.add_patch(
            Rectangle(
                (left + i * width / n_show, 2.85),
                width / n_show * 0.7,
                0.7 * s,
                fc=COLORS["highlight"] if i in top else "#CCCCCC",
                ec="none",
            )
        )
    ax.text(
        8.1,
        3.2,
        f"top-$K_r$: keep the {moe.top_k} | {cfg.n_activated_experts} highest scores;\n"
        "gate weights $g_{i,t}$: those scores, normalised",
        fontsize=8,
        va="center",
    )

    # Experts: shared (always on) and routed (only the selected ones run).
    _box(
        ax,
        (5.3, 5.15),
        2.5,
        1.0,
        f"shared expert\n$N_s$ = {moe.n_shared} | {cfg.n_shared_experts}: every token",
        color=COLORS["deepseek"],
        fill="#DCEBF5",
        size=8,
    )
    n_boxes = 8
    chosen = {1, 4, 6}
    x0, step = 7.0, 0.75
    for j in range(n_boxes):
        x = x0 + j * step
        on = j in chosen
        ax.add_patch(
            FancyBboxPatch(
                (x, 4.75),
                0.55,
                0.8,
                boxstyle="round,pad=0.01,rounding_size=0.08",
                fc=COLORS["highlight"] if on else "white",
                ec=COLORS["highlight"] if on else "#999999",
                lw=1.0,
                alpha=0.85 if on else 1,
            )
        )
        ax.text(x + 0.275, 5.15, f"$E_{{{j + 1}}}$", ha="center", va="center", fontsize=8)
    ax.text(x0 + n_boxes * step, 5.15, "…", fontsize=12, va="center")
    ax.text(
        x0,
        5.95,
        f"top $K_r$ routed experts run: SwiGLU FFNs of {moe.d_expert} | "
        f"{_n(cfg.moe_inter_dim)} units",
        fontsize=7.5,
        va="center",
    )
    _arrow(ax, (5.3, 3.6), (5.3, 4.6), color=COLORS["deepseek"])
    for j in sorted(chosen):
        _arrow(ax, (6.0, 3.6), (x0 + 0.275 + j * step, 4.7), color=COLORS["highlight"])

    ax.text(
        9.0,
        0.35,
        f"sizes, Lab 2 (cpu preset) | DeepSeek-V3:\nwidth $d$: {_n(lab.d_model)} | {_n(cfg.dim)}\n"
        f"MoE layers: {lab.n_layer} of {lab.n_layer} | {cfg.n_moe_layers} of {cfg.n_layers}\n"
        f"experts a token uses: {moe.top_k + moe.n_shared} of {moe.n_routed + moe.n_shared} | "
        f"{cfg.n_activated_experts + cfg.n_shared_experts} of "
        f"{cfg.n_routed_experts + cfg.n_shared_experts}",
        fontsize=8,
        va="bottom",
        color=_INK,
        linespacing=1.5,
    )
    # Weighted sum.
    _box(
        ax,
        (8.8, 6.85),
        9.0,
        0.75,
        "$h'_t = u_t + \\sum_{shared} \\mathrm{FFN}_i(u_t) + \\sum_{top\\,K_r} g_{i,t}\\,"
        "\\mathrm{FFN}_i(u_t)$",
        color=COLORS["moe"],
        fill="#DCEBF5",
        size=9.5,
    )
    _arrow(ax, (5.3, 5.68), (5.3, 6.45), color=COLORS["deepseek"])
    _arrow(ax, (12.55, 5.6), (12.55, 6.45), color=COLORS["highlight"])
    add_source(
        fig,
        "DeepSeek-V3 report §2.1.2; sizes of config_671B.json (effllm.deepseek_v3) and of "
        "Lab 2's cpu preset (effllm.presets). Scores drawn for illustration",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# (b) What each attention variant caches per token, to scale


def _cache_parts(cfg: AttentionConfig, d_model: int) -> list[tuple[str, int]]:
    """(part, values) that one token adds to one layer's cache; they sum to the library's count."""
    r = resolve(cfg, d_model)
    if r.kind == "mla":
        parts = [("latent $c_{KV}$", r.kv_lora_rank), ("RoPE key $k^R$", r.qk_rope_head_dim)]
    else:
        half = r.n_kv_groups * r.head_dim
        parts = [("keys", half), ("values", half)]
    assert sum(v for _, v in parts) == kv_cache_values_per_token(cfg, d_model)
    return parts


def attention_variants_v3() -> dict[str, AttentionConfig]:
    """MHA, GQA, MQA and MLA of DeepSeek-V3's shape (GQA and MQA hypothetical, as in Lab 3)."""
    cfg = v3.CONFIG
    mha = v3.same_shape_mha()
    return {
        "MHA": mha,
        "GQA": AttentionConfig(
            "gqa", n_head=cfg.n_heads, head_dim=mha.head_dim, n_kv_groups=V3_GQA_GROUPS
        ),
        "MQA": AttentionConfig("mqa", n_head=cfg.n_heads, head_dim=mha.head_dim),
        "MLA": v3.mla(),
    }


def kv_cache_to_scale() -> Figure:
    """Numbers cached per token per layer by MHA, GQA, MQA and MLA, on one linear scale each for
    V3's shape and Lab 3's tiny model."""
    use_style()
    lab = presets.PRESETS["attention"]["cpu"]
    panels = (
        ("DeepSeek-V3's shape", attention_variants_v3(), v3.CONFIG.dim),
        (
            f"Lab 3's tiny model (d = {lab.d_model}, {lab.n_head} heads)",
            {k: m.attention for k, m in lab.models().items()},
            lab.d_model,
        ),
    )
    fig, axes = plt.subplots(2, 1, figsize=(7.2, 4.6), height_ratios=(1, 1))
    shades = {
        "keys": COLORS["dense"],
        "values": "#C8C8C8",
        "latent $c_{KV}$": COLORS["deepseek"],
        "RoPE key $k^R$": PALETTE[5],
    }
    for ax, (title, variants, d_model) in zip(axes, panels, strict=True):
        names = list(variants)
        totals = {n: kv_cache_values_per_token(variants[n], d_model) for n in names}
        biggest = max(totals.values())
        for row, name in enumerate(names):
            y = len(names) - 1 - row
            left = 0
            for part, n in _cache_parts(variants[name], d_model):
                ax.barh(y, n, left=left, color=shades[part], height=0.6, label=part)
                left += n
            share = 100 * totals[name] / totals["MHA"]
            ax.text(
                left + biggest * 0.01,
                y,
                f"{_n(totals[name])} ({share:.1f}% of MHA)" if name != "MHA" else _n(totals[name]),
                va="center",
                fontsize=8,
            )
        ax.set_yticks(range(len(names)), names[::-1])
        ax.set_xlim(0, biggest * 1.25)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("numbers cached per token, per layer")
        ax.grid(axis="y", visible=False)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[0].legend(unique.values(), unique.keys(), loc="lower right", ncols=2, fontsize=8)
    return _finish(
        fig,
        "What each attention variant caches per token, drawn to scale",
        x=0.02,
        top=1.0,
        source=(
            "effllm.attention.kv_cache_values_per_token (Table 1 of the DeepSeek-V2 report) "
            f"on V3's configuration (GQA with {V3_GQA_GROUPS} groups and MQA hypothetical) and "
            "on Lab 3's cpu preset"
        ),
    )


# ---------------------------------------------------------------------------------------------
# (c) MLA's projections and its absorbed form


def mla_projections() -> Figure:
    """Multi-head latent attention: the down- and up-projections, the decoupled RoPE key, what
    is cached, and the absorbed form used when generating."""
    cfg = v3.CONFIG
    h, dh, dr, dc = cfg.n_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.kv_lora_rank
    fig, ax = _canvas((9.6, 6.0), 14, 8.8)
    ax.set_title("Multi-head latent attention: cache a small latent, expand it when needed", pad=4)
    cache = dict(color=COLORS["deepseek"], fill="#DCEBF5")
    _box(ax, (1.3, 4.3), 2.4, 0.9, f"hidden state $h_t$\n{_n(cfg.dim)} numbers", size=8.5)
    # Keys and values from the latent.
    _box(ax, (5.0, 7.0), 2.6, 0.9, f"latent $c_t^{{KV}}$\n{dc} numbers", size=8.5, **cache)
    _arrow(ax, (2.5, 4.6), (3.7, 6.8))
    ax.text(2.95, 5.9, "down: $W^{DKV}$", fontsize=8, ha="right")
    _box(ax, (9.1, 8.0), 3.4, 0.75, f"keys $k_t^C = W^{{UK}} c_t^{{KV}}$\n{h} heads × {dh}", size=8)
    _box(
        ax, (9.1, 6.3), 3.4, 0.75, f"values $v_t^C = W^{{UV}} c_t^{{KV}}$\n{h} heads × {dh}", size=8
    )
    _arrow(ax, (6.3, 7.25), (7.4, 7.9))
    _arrow(ax, (6.3, 6.75), (7.4, 6.4))
    ax.text(6.55, 7.0, "up", fontsize=8, color="#555555")
    # The decoupled rotary key.
    _box(
        ax,
        (5.0, 4.3),
        3.0,
        0.9,
        f"RoPE key $k_t^R$: {dr} numbers,\nshared by all heads",
        size=8,
        **cache,
    )
    _arrow(ax, (2.5, 4.3), (3.5, 4.3))
    ax.text(3.1, 4.5, "$W^{KR}$, RoPE", fontsize=7.5, ha="center")
    ax.text(
        3.7,
        5.35,
        f"cached per token and layer: {dc} + {dr} = {dc + dr} numbers",
        fontsize=8.5,
        color=COLORS["deepseek"],
        weight="bold",
    )
    # Queries.
    _box(
        ax,
        (5.0, 1.7),
        2.6,
        0.9,
        f"query latent $c_t^Q$\n{_n(cfg.q_lora_rank)} numbers",
        size=8.5,
        fill=_PALE,
    )
    _arrow(ax, (2.5, 4.0), (3.7, 1.9))
    _box(
        ax,
        (9.1, 2.7),
        3.4,
        0.8,
        f"queries $q_t^C$: {h} × {dh},\nand $q_t^R$: {h} × {dr}, with RoPE",
        size=8,
        fill=_PALE,
    )
    _arrow(ax, (6.3, 1.9), (7.4, 2.55))
    # Attention score.
    _box(
        ax,
        (12.55, 4.9),
        2.5,
        1.2,
        "score, per head:\n$q^C\\cdot k^C + q^R\\cdot k^R$",
        color=COLORS["highlight"],
        size=8.5,
    )
    _arrow(ax, (10.8, 7.8), (12.3, 5.5))
    _arrow(ax, (10.8, 2.9), (12.3, 4.3))
    _arrow(ax, (6.5, 4.3), (11.3, 4.75), color=COLORS["deepseek"], ls="--")
    # The absorbed form.
    ax.add_patch(Rectangle((6.9, 0.05), 7.05, 1.55, fc=_PALE, ec="#999999", lw=0.8))
    ax.text(
        7.05,
        0.83,
        "absorbed form, used when generating:\n"
        "$q^{C\\top} k^C = (W^{UK\\top} q^C)^\\top c^{KV}$: $W^{UK}$ folds into the query,\n"
        "$W^{UV}$ into the output $W^O$; attention runs on the cached latents",
        fontsize=8,
        va="center",
        linespacing=1.5,
    )
    ax.text(
        0.1,
        0.45,
        "RoPE rotates keys by position, which\nwould block the absorption: position\n"
        "travels in $k^R$ instead",
        fontsize=8,
        color="#555555",
        linespacing=1.4,
    )
    add_source(
        fig,
        "DeepSeek-V2 report §2.1 (MLA, decoupled RoPE); sizes of V3's config_671B.json "
        "(effllm.deepseek_v3)",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# (d) One GRPO step


def grpo_step() -> Figure:
    """One GRPO step on one prompt: G samples, their rewards, group advantages, and the clipped
    objective with a KL penalty. Rewards come from :func:`effllm.rl_tasks.reward`, advantages
    from :func:`effllm.grpo.group_advantages`.
    """
    rl = presets.PRESETS["grpo"]["cpu"].rl
    problem = rl_tasks.Problem(57, 38, 2)
    fig, ax = _canvas((9.6, 5.2), 14, 7.6)
    ax.set_title("One GRPO step: score a group of answers against each other", pad=4)
    _box(ax, (1.1, 3.6), 2.0, 1.0, f'prompt $q$\n"{problem.prompt}"', size=8.5)
    _arrow(ax, (2.15, 3.6), (2.75, 3.6))
    _box(ax, (3.6, 3.6), 1.6, 1.0, "policy\n$\\pi_{\\theta_{old}}$", fill=_PALE)
    # Five made-up samples, graded by the lab's reward function.
    answer = problem.answer
    completions = [f"<{answer}>", f"<{answer - 10}>", f"{answer}", f"<{answer}>", f"<{answer + 1}>"]
    rewards = [
        rl_tasks.reward(
            c, answer, format_reward=rl.format_reward, accuracy_reward=rl.accuracy_reward
        )
        for c in completions
    ]
    adv = group_advantages(torch.tensor([rewards]))[0].tolist()
    ys = np.linspace(6.2, 1.2, len(completions))
    ax.text(6.2, 6.85, f"$G$ samples $o_i$\n({rl.G} in Lab 4, 5 shown)", fontsize=8, ha="center")
    ax.text(8.0, 6.85, "reward\n$r_i$", fontsize=8, ha="center")
    ax.text(
        10.1,
        6.85,
        "advantage $\\hat A_i =$\n$(r_i - \\mathrm{mean}(r)) / \\mathrm{std}(r)$",
        fontsize=8,
        ha="center",
    )
    for i, (text, r, a, y) in enumerate(zip(completions, rewards, adv, ys, strict=True)):
        _arrow(ax, (4.45, 3.6), (5.35, y), color="#999999")
        _box(ax, (6.2, y), 1.6, 0.55, f"$o_{i + 1}$: {text}", size=8.5)
        _box(ax, (8.0, y), 0.9, 0.55, f"{r:.1f}", size=8.5, fill=_PALE)
        color = COLORS["hyperscalers"] if a > 0 else COLORS["chips"]
        ax.add_patch(Rectangle((10.1, y - 0.2), 0.55 * a, 0.4, fc=color, ec="none"))
        ax.text(
            10.1 + 0.55 * a + (0.1 if a > 0 else -0.1),
            y,
            f"{a:+.2f}",
            fontsize=8,
            va="center",
            ha="left" if a > 0 else "right",
        )
    ax.plot([10.1, 10.1], [ys[-1] - 0.4, ys[0] + 0.4], color=_INK, lw=0.8)
    ax.text(
        5.3,
        0.3,
        f"rule-based reward: {rl.format_reward:g} for a tagged answer <…>,\n"
        f"{rl.accuracy_reward:g} more if it is right",
        fontsize=7.5,
        color="#555555",
    )
    _box(
        ax,
        (12.65, 5.3),
        2.5,
        2.0,
        "loss, per token:\n$-\\min(\\rho\\hat A,$\n"
        "$\\mathrm{clip}(\\rho, 1\\pm\\epsilon)\\hat A)$\n"
        "$+\\ \\beta\\,\\mathrm{KL}(\\pi_\\theta\\|\\pi_{ref})$",
        color=COLORS["highlight"],
        size=8.5,
    )
    ax.text(
        12.65,
        4.0,
        f"$\\rho = \\pi_\\theta/\\pi_{{\\theta_{{old}}}}$\n$\\epsilon$ = {rl.epsilon:g}, "
        f"$\\beta$ = {rl.beta:g}\n\nno value network:\nthe group is\nthe baseline",
        fontsize=8,
        ha="center",
        va="top",
        linespacing=1.4,
    )
    add_source(
        fig,
        "DeepSeekMath §4.1 (GRPO), R1 report (rule-based rewards); effllm.rl_tasks.reward, "
        "effllm.grpo.group_advantages and Lab 4's cpu preset. The five samples are made up",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# (e) V3's training-cost arithmetic


def training_cost_arithmetic() -> Figure:
    """GPU hours by stage times the assumed rental price, and what the total leaves out."""
    use_style()
    table = economics.v3_training_cost()
    stages = table[table["stage"] != "total"]
    total = table.set_index("stage").loc["total"]
    fig, ax = plt.subplots(figsize=(7.6, 3.4))
    left = 0.0
    colors = [COLORS["deepseek"], PALETTE[5], PALETTE[4]]
    for i, ((_, row), color) in enumerate(zip(stages.iterrows(), colors, strict=True)):
        hours = row["h800_gpu_hours"] / 1e6
        ax.barh(0, hours, left=left, color=color, height=0.5)
        ax.annotate(
            f"{row['stage']}: {hours:.3f}M",
            (left + hours / 2 if i == 0 else left + hours, 0.25),
            xytext=(0 if i == 0 else -10 - 95 * (i - 1), 14 + 14 * i),
            textcoords="offset points",
            ha="center" if i == 0 else "right",
            fontsize=8.5,
            arrowprops=None if i == 0 else dict(arrowstyle="-", color="#999999", lw=0.7),
        )
        left += hours
    ax.set_xlim(0, left * 1.02)
    ax.set_ylim(-2.0, 1.3)
    ax.set_yticks([])
    ax.set_xlabel("H800 GPU hours (millions)")
    ax.text(
        0.0,
        -0.65,
        f"{total['h800_gpu_hours'] / 1e6:.3f} million GPU hours  ×  "
        f"\\${v3.USD_PER_GPU_HOUR:g} an hour (assumed rental)  =  "
        f"\\${total['cost_usd'] / 1e6:.3f} million",
        fontsize=10,
        weight="bold",
        transform=ax.get_yaxis_transform(),
    )
    ax.text(
        0.0,
        -1.45,
        "not in the bill: the research and ablation runs before the final run (the report says "
        "so);\nbuying the GPUs (priced as if rented); the work that turned V3 into R1",
        fontsize=8.5,
        color="#555555",
        transform=ax.get_yaxis_transform(),
        va="center",
    )
    ax.grid(axis="y", visible=False)
    ax.spines["left"].set_visible(False)
    ax.set_title("V3's \\$5.6 million: GPU hours of the final run, times a price")
    add_source(
        fig,
        "DeepSeek-V3 report, Table 1 (effllm.economics.v3_training_cost; "
        "effllm/data/deepseek_v3_training_cost.csv)",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# (f) The timeline of the episode


def load_timeline() -> pd.DataFrame:
    """The shipped dated events (``effllm/data/timeline.csv``), checked: dates in order, known
    categories, a source for each."""
    df = read_csv("timeline.csv", TIMELINE_COLUMNS)
    bad = sorted(set(df["category"]) - set(TIMELINE_CATEGORIES))
    if bad:
        raise ValueError(f"timeline.csv: unknown categories {bad}; use {TIMELINE_CATEGORIES}")
    if not df["date"].is_monotonic_increasing:
        raise ValueError("timeline.csv: the events must be in date order")
    return df


def _gap(days: int) -> str:
    months = round(days / 30.4)
    return f"{months} months later" if months >= 2 else f"{days} days later"


def timeline() -> Figure:
    """The episode, one event per row in date order, coloured by kind, with the gaps marked."""
    use_style()
    df = load_timeline()
    n = len(df)
    fig, ax = plt.subplots(figsize=(7.6, 0.36 * n + 1.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.6, n + 0.4)
    ax.axis("off")
    ax.plot([1.75, 1.75], [0, n - 1], color="#BBBBBB", lw=1.5, zorder=0)
    for i, row in df.iterrows():
        y = n - 1 - i
        color = CATEGORY_COLORS[row["category"]]
        ax.scatter([1.75], [y], s=42, color=color, zorder=2)
        ax.text(1.55, y, f"{row['date']:%-d %b %Y}", ha="right", va="center", fontsize=9.5)
        weight = "bold" if row["date"] == EVENT else "normal"
        ax.text(1.95, y, row["event"], va="center", fontsize=9.5, weight=weight)
        if i:
            days = (row["date"] - df["date"][i - 1]).days
            if days > 60:
                ax.text(
                    1.85,
                    y + 0.5,
                    _gap(days),
                    fontsize=7,
                    color="#888888",
                    va="center",
                    style="italic",
                )
    for category, color in CATEGORY_COLORS.items():
        ax.scatter([], [], color=color, label=category)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 1.02), ncols=3, fontsize=8)
    ax.set_title("The DeepSeek episode in order (not to scale)")
    add_source(fig, "effllm/data/timeline.csv (one source per event: see the chapters)")
    return fig


def rules_and_releases() -> Figure:
    """The US export rules and DeepSeek's releases on one time axis, with the period in which
    exporting the H800 to China needed a licence shaded."""
    use_style()
    df = load_timeline()
    lanes = {"export rules": 1.0, "DeepSeek releases": 0.0}
    df = df[df["category"].isin(lanes)]
    fig, ax = plt.subplots(figsize=(7.6, 3.8))
    h800 = df[df["label"] == "H800 licence"]["date"].iloc[0]
    start = df["date"].min() - pd.Timedelta(days=75)
    end = df["date"].max() + pd.Timedelta(days=75)
    ax.axvspan(h800, end, color=COLORS["chips"], alpha=0.08, lw=0)
    ax.text(
        h800 + pd.Timedelta(days=12),
        0.5,
        "from 23 Oct 2023: exporting the H800 to China needs a licence",
        fontsize=8,
        color=COLORS["chips"],
        va="center",
    )
    for lane, y in lanes.items():
        rows = df[df["category"] == lane].reset_index(drop=True)
        ax.axhline(y, color="#DDDDDD", lw=1, zorder=0)
        ax.scatter(rows["date"], [y] * len(rows), color=CATEGORY_COLORS[lane], zorder=2, s=36)
        sign = 1 if y else -1
        for i, row in rows.iterrows():
            dy = sign * (0.1 + 0.36 * (i % 2))
            ax.annotate(
                f"{row['label']}\n{row['date']:%b %Y}",
                (row["date"], y),
                xytext=(row["date"], y + dy),
                fontsize=7.5,
                ha="center",
                va="bottom" if dy > 0 else "top",
                linespacing=1.1,
                arrowprops=dict(arrowstyle="-", color="#BBBBBB", lw=0.6, shrinkA=0, shrinkB=3),
            )
    ax.set_yticks(list(lanes.values()), ["US export\nrules", "DeepSeek\nreleases"])
    ax.set_ylim(-1.15, 2.15)
    ax.set_xlim(start, end)
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.xaxis.set_minor_locator(mdates.MonthLocator(bymonth=(4, 7, 10)))
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("date")
    ax.set_title("Each release shown came after the H800 needed an export licence")
    add_source(fig, "effllm/data/timeline.csv (BIS rules, NVIDIA's filings, DeepSeek's releases)")
    return fig


# ---------------------------------------------------------------------------------------------
# (g) Figures for the narrative chapters


def capex_by_company() -> Figure:
    """Each company's reported cash capex by fiscal year (bars) and its guidance (ranges)."""
    use_style()
    df = capex.capex()
    fig, axes = plt.subplots(1, 4, figsize=(8.4, 3.6), sharey=True)
    for ax, company in zip(axes, capex.COMPANIES, strict=True):
        mine = df[df["company"] == company]
        rep = mine[(mine["kind"] == "reported") & (mine["measure"] == "cash purchases")]
        ax.bar(rep["fiscal_year"], rep["mid_usd_bn"], color=COLORS["hyperscalers"], width=0.6)
        guide = mine[mine["kind"] == "guidance"].reset_index(drop=True)
        for i, row in guide.iterrows():
            x = row["fiscal_year"] + 0.18 + 0.12 * (i % 3) - 0.12
            verified = row["status"] == "verified"
            ax.errorbar(
                x,
                row["mid_usd_bn"],
                yerr=[
                    [row["mid_usd_bn"] - row["low_usd_bn"]],
                    [row["high_usd_bn"] - row["mid_usd_bn"]],
                ],
                fmt="D" if verified else "o",
                mfc="white",
                mec=COLORS["chips"],
                ecolor=COLORS["chips"],
                ms=5,
                capsize=2,
            )
        ax.set_title(company + (" (FY to June)" if company == "Microsoft" else ""), fontsize=9.5)
        ax.set_xticks(sorted(mine["fiscal_year"].unique()))
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("fiscal year", fontsize=8.5)
    axes[0].set_ylabel("USD billions")
    handles = [
        Rectangle((0, 0), 1, 1, color=COLORS["hyperscalers"]),
        plt.Line2D([], [], ls="", marker="D", mfc="white", mec=COLORS["chips"]),
        plt.Line2D([], [], ls="", marker="o", mfc="white", mec=COLORS["chips"]),
    ]
    fig.legend(
        handles,
        [
            "reported: cash purchases of property and equipment",
            "guidance (in a filing)",
            "guidance (secondary sources only)",
        ],
        loc="upper left",
        bbox_to_anchor=(0.0, 0.93),
        ncols=3,
        fontsize=8,
    )
    return _finish(
        fig,
        "Capital spending by the four largest buyers of GPUs: reported and guided",
        x=0.01,
        top=0.9,
        source=(
            "effllm/data/capex.csv (10-K filings; guidance as dated there). Guidance may use a "
            "wider measure than the bars (Microsoft's counts finance leases, Meta's adds their "
            "principal)"
        ),
    )


def load_claims() -> pd.DataFrame:
    """The printed figures of ``effllm/data/press_claims.csv`` with the data's value and the
    verdict of :func:`effllm.markets.check_claim` for each (columns ``value``, ``verdict``)."""
    claims = read_csv("press_claims.csv", CLAIM_COLUMNS)
    close = markets.closes(markets.load_prices(), None, BEFORE, EVENT)
    shares, _, _ = markets.shares_outstanding("NVDA", EVENT - pd.Timedelta(days=1))
    values = []
    for _, row in claims.iterrows():
        before, after = close[row["ticker"]].loc[BEFORE], close[row["ticker"]].loc[EVENT]
        values.append(
            {
                "close_usd": after,
                "change_pct": 100 * (after / before - 1),
                "value_lost_usd_bn": markets.market_value_change(after, before, shares) / 1e9,
            }[row["quantity"]]
        )
    verdicts = [
        markets.check_claim(p, v, q, 0.01 if k == "value_lost_usd_bn" else 0.0)
        for p, v, q, k in zip(
            claims["printed"], values, claims["qualifier"], claims["quantity"], strict=True
        )
    ]
    return claims.assign(value=values, verdict=verdicts)


def press_claims() -> Figure:
    """What outlets printed (dots, coloured by verdict) against the closing figures (ticks),
    with NVIDIA's range during the session shaded."""
    use_style()
    claims = load_claims()
    session = markets.load_sessions()
    before = session.loc[BEFORE, "close"]
    low, high = session.loc[EVENT, "low"], session.loc[EVENT, "high"]
    shares, _, _ = markets.shares_outstanding("NVDA", EVENT - pd.Timedelta(days=1))
    ranges = {
        "close_usd": (low, high),
        "change_pct": (100 * (low / before - 1), 100 * (high / before - 1)),
        "value_lost_usd_bn": (
            markets.market_value_change(high, before, shares) / 1e9,
            markets.market_value_change(low, before, shares) / 1e9,
        ),
    }
    panels = [
        ("close_usd", "NVIDIA's close on 27 January (USD)", "NVDA"),
        ("change_pct", "NVIDIA's change, Friday to Monday (%)", "NVDA"),
        ("value_lost_usd_bn", "NVIDIA's market value lost (USD billions)", "NVDA"),
        ("change_pct", "index changes (%)", None),
    ]
    groups = []
    for quantity, title, ticker in panels:
        mine = claims[claims["quantity"] == quantity]
        mine = mine[mine["ticker"] == ticker] if ticker else mine[mine["ticker"] != "NVDA"]
        groups.append((quantity, title, ticker, mine.reset_index(drop=True)))
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(7.4, 8.4), height_ratios=[len(g[3]) + 1 for g in groups]
    )
    for ax, (quantity, title, ticker, rows) in zip(axes, groups, strict=True):
        ys = np.arange(len(rows))[::-1]
        if ticker:
            lo, hi = sorted(ranges[quantity])
            ax.axvspan(lo, hi, color="#DDDDDD", alpha=0.6, lw=0)
        for y, (_, row) in zip(ys, rows.iterrows(), strict=True):
            printed = float(row["printed"])
            ax.plot([row["value"], printed], [y, y], color="#BBBBBB", lw=1, zorder=1)
            ax.scatter(printed, y, color=VERDICT_COLORS[row["verdict"]], s=40, zorder=3)
            ax.scatter(row["value"], y, marker="|", color=_INK, s=160, zorder=2)
        ax.set_yticks(ys, [f"{r['outlet']}: {r['claim']}" for _, r in rows.iterrows()], fontsize=8)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        points = np.concatenate([rows["printed"].astype(float), rows["value"]])
        pad = max(0.08 * (points.max() - points.min()), 0.05 * abs(points).max() / 10)
        ax.set_xlim(points.min() - pad, points.max() + pad)
        ax.set_title(title, fontsize=9.5)
        ax.grid(axis="y", visible=False)
        ax.tick_params(axis="x", labelsize=8)
    axes[-1].set_xlabel("value (each panel in its own units)")
    handles = [
        plt.Line2D([], [], ls="", marker="o", color=c, label=f"printed: {v}")
        for v, c in VERDICT_COLORS.items()
    ]
    handles.append(
        plt.Line2D([], [], ls="", marker="|", color=_INK, ms=10, label="the data, at the close")
    )
    handles.append(
        Rectangle((0, 0), 1, 1, color="#DDDDDD", label="NVIDIA's range during the session")
    )
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 0.955), ncols=3, fontsize=8)
    return _finish(
        fig,
        "What the press printed about 27 January 2025, against the closing figures",
        x=0.01,
        top=0.925,
        source=(
            "effllm/data/press_claims.csv (the outlets, cited in the press appendix); closes, "
            "session range and share count shipped with Lab 5; verdicts by "
            "effllm.markets.check_claim"
        ),
    )


# ---------------------------------------------------------------------------------------------
# (h) The chips against the export rules (geopolitics)


def chips_against_rules() -> Figure:
    """Each chip's TPP against its chip-to-chip bandwidth, with the October 2022 rule's region
    (both thresholds), the October 2023 rule's line (TPP alone) and the April 2025 H20 licence."""
    use_style()
    df = chips.load_chips()
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    xmax = df["interconnect_gbps"].max() * 1.3
    ymax = df["tpp"].max() * 1.18
    ax.add_patch(
        Rectangle(
            (chips.INTERCONNECT_THRESHOLD_GBPS, chips.TPP_THRESHOLD),
            xmax - chips.INTERCONNECT_THRESHOLD_GBPS,
            ymax - chips.TPP_THRESHOLD,
            fc=COLORS["chips"],
            alpha=0.10,
            lw=0,
        )
    )
    ax.text(
        xmax * 0.985,
        ymax * 0.62,
        f"Oct 2022 rule: licence if TPP ≥ {chips.TPP_THRESHOLD:,}\n"
        f"AND chip-to-chip ≥ {chips.INTERCONNECT_THRESHOLD_GBPS} GB/s",
        ha="right",
        va="center",
        fontsize=8,
        color=COLORS["chips"],
    )
    ax.axhline(chips.TPP_THRESHOLD, color=COLORS["highlight"], ls="--", lw=1.2)
    ax.text(
        8,
        chips.TPP_THRESHOLD * 0.95,
        f"Oct 2023 rule: licence if\nTPP ≥ {chips.TPP_THRESHOLD:,}, any bandwidth\n"
        f"(or TPP ≥ {chips.TPP_DENSITY_ALTERNATIVE:,} with performance\n"
        f"density ≥ {chips.PERFORMANCE_DENSITY_THRESHOLD}: not drawn)",
        fontsize=7.5,
        color=COLORS["highlight"],
        va="top",
    )
    for _, row in df.iterrows():
        china = row["chip"] in ("A800", "H800", "H20")
        color = COLORS["chips"] if china else COLORS["index"]
        if not pd.isna(row["interconnect_gbps_reported_low"]):
            ax.plot(
                [row["interconnect_gbps_reported_low"], row["interconnect_gbps"]],
                [row["tpp"]] * 2,
                color=color,
                lw=1,
                ls=":",
            )
            ax.text(
                row["interconnect_gbps_reported_low"],
                row["tpp"] * 0.955,
                f"~{row['interconnect_gbps_reported_low']:.0f} in\nsome reports",
                fontsize=6.5,
                color="#555555",
                ha="center",
                va="top",
            )
        ax.scatter(
            [row["interconnect_gbps"]],
            [row["tpp"]],
            s=46,
            color=color,
            marker="o" if china else "s",
            zorder=3,
        )
        ax.annotate(
            f"{row['chip']} ({row['year']})\nTPP {row['tpp']:,.0f}; "
            f"memory {row['memory_bandwidth_gbps'] / 1000:.2f} TB/s",
            (row["interconnect_gbps"], row["tpp"]),
            xytext=(-8, 8) if row["chip"] == "H100" else (8, -4 if china else 6),
            textcoords="offset points",
            ha="right" if row["chip"] == "H100" else "left",
            va="bottom" if not china else "top",
            fontsize=7.5,
        )
    h20 = df.set_index("chip").loc["H20"]
    ax.annotate(
        "9 Apr 2025: the H20 needs a licence too,\nset by its memory and interconnect bandwidth",
        (h20["interconnect_gbps"], h20["tpp"]),
        xytext=(h20["interconnect_gbps"] - 40, h20["tpp"] * 0.4),
        textcoords="data",
        ha="right",
        va="center",
        fontsize=7.5,
        color=COLORS["chips"],
        arrowprops=dict(arrowstyle="-|>", color=COLORS["chips"], lw=0.8),
    )
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.set_xlabel("chip-to-chip bandwidth (NVLink, GB/s, aggregate)")
    ax.set_ylabel(f"TPP = dense BF16 TFLOP/s × {chips.BF16_BITS}")
    ax.set_title("Each rule answered the last workaround: the chips against the thresholds")
    add_source(
        fig,
        "effllm/data/chips.csv: NVIDIA's data sheets for the A100 and H100; secondary reports "
        "for the A800, H800 and H20 (no NVIDIA data sheet); thresholds from the BIS rules of "
        "Oct 2022 and Oct 2023; the H20 licence from NVIDIA's 10-Q (May 2025)",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# (i) FP8 block scaling (Lab 7)


def fp8_block_scaling() -> Figure:
    """V3's fine-grained FP8: a scale per 1 × 128 activation tile and per 128 × 128 weight
    block, E4M3 values, and partial sums promoted to FP32 every N_C = 128 products."""
    n_c, e4m3_max = fp8.BLOCK, fp8.fmax("e4m3")
    lab = presets.PRESETS["fp8"]["cpu"]
    fig, ax = _canvas((9.6, 4.9), 14, 7.2)
    ax.set_title("FP8 with fine-grained scaling: one scale per small group, FP32 every 128")
    # Activations: rows are tokens, the inner dimension K runs across in 1 x 128 tiles.
    rows, cols, tw, th = 4, 4, 1.0, 0.55
    x0, y0 = 0.4, 2.2
    for r in range(rows):
        for c in range(cols):
            hot = (r, c) == (1, 2)
            ax.add_patch(
                Rectangle(
                    (x0 + c * tw, y0 + (rows - 1 - r) * th),
                    tw,
                    th,
                    fc=COLORS["highlight"] if hot else _PALE,
                    ec=_INK,
                    lw=0.8,
                    alpha=0.6 if hot else 1,
                )
            )
    ax.text(x0 + cols * tw / 2, y0 + rows * th + 0.5, "activations $x$", ha="center", weight="bold")
    ax.text(
        x0 + cols * tw / 2,
        y0 - 0.3,
        f"inner dimension $K$, {n_c} channels per tile →",
        ha="center",
        va="top",
        fontsize=8,
    )
    ax.text(
        x0 - 0.15, y0 + rows * th / 2, "tokens", rotation=90, ha="right", va="center", fontsize=8
    )
    ax.annotate(
        f"1 × {n_c} tile: one token, {n_c} channels,\none scale $s = \\max|x| / {e4m3_max:g}$",
        (x0 + 2.5 * tw, y0 + 2.5 * th),
        xytext=(x0 + 0.1, 0.95),
        fontsize=8,
        arrowprops=dict(arrowstyle="-", color="#999999", lw=0.7),
    )
    # Weights: 128 x 128 blocks.
    bw = 0.62
    wx0, wy0 = 5.4, 1.9
    for r in range(4):
        for c in range(3):
            hot = (r, c) == (2, 1)
            ax.add_patch(
                Rectangle(
                    (wx0 + c * bw, wy0 + (3 - r) * bw),
                    bw,
                    bw,
                    fc=COLORS["deepseek"] if hot else _PALE,
                    ec=_INK,
                    lw=0.8,
                    alpha=0.5 if hot else 1,
                )
            )
    ax.text(wx0 + 1.5 * bw, wy0 + 4 * bw + 0.5, "weights $W$", ha="center", weight="bold")
    ax.text(wx0 - 0.15, wy0 + 2 * bw, "$K$", ha="right", va="center", fontsize=8)
    ax.text(wx0 + 1.5 * bw, wy0 - 0.3, "outputs $N$ →", ha="center", va="top", fontsize=8)
    ax.annotate(
        f"{n_c} × {n_c} block:\none scale",
        (wx0 + 1.5 * bw, wy0 + 0.5 * bw + bw),
        xytext=(wx0 + 2.2, 0.95),
        fontsize=8,
        arrowprops=dict(arrowstyle="-", color="#999999", lw=0.7),
    )
    # Accumulation along K: chunks of N_C products, each promoted into an FP32 total.
    ax.text(11.6, 6.3, "one output: $\\sum_k x_k W_{kn}$", ha="center", weight="bold")
    for i in range(4):
        y = 5.3 - i * 0.85
        _box(ax, (10.6, y), 2.6, 0.6, f"{n_c} FP8 products,\nsummed at ~14 bits", size=7)
        _arrow(ax, (11.95, y), (12.35, 2.3 + 0.12 * (3 - i)), color="#999999")
    _box(
        ax,
        (12.9, 1.7),
        1.9,
        1.2,
        "FP32 total\n+= $s_x s_w\\,\\cdot$ partial\n(every $N_C$ = " + f"{n_c})",
        color=COLORS["highlight"],
        size=7.5,
    )
    ax.text(
        0.4,
        0.2,
        f"E4M3 values: 4 exponent and 3 mantissa bits, largest {e4m3_max:g}.  "
        f"V3: $d$ = {v3.CONFIG.dim:,} = {v3.CONFIG.dim // n_c} tiles per token; "
        f"Lab 7 (cpu): $d$ = {lab.d_model} = {lab.d_model // n_c} tile",
        fontsize=8,
        color="#555555",
    )
    add_source(
        fig,
        "DeepSeek-V3 report §3.3 (fine-grained quantisation, promotion every N_C = 128); "
        "effllm.fp8 (BLOCK, fmax) and Lab 7's cpu preset",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# (j) The event study (Lab 5)


def _pct(x: float) -> str:
    return f"{100 * x:+.2f}%".replace("-", "−")


def event_study_steps() -> Figure:
    """Lab 5's market-model event study in four steps, with NVIDIA's numbers on 27 January 2025:
    fit alpha and beta before the event, expect alpha + beta × market, abnormal = actual −
    expected, cumulate over the window and divide by sigma √L."""
    P = presets.PRESETS["market_shock"]["cpu"]
    returns = markets.simple_returns(markets.closes(markets.load_prices()))
    study = markets.event_study(returns, "NVDA", P.market, P.event, window=P.window)
    m, day = study.model, study.event
    market_move = float(returns.loc[study.event_date, P.market])
    lo, hi = P.window
    fig, ax = _canvas((9.6, 4.8), 14, 7.2)
    ax.set_title("An event study: what the market explains, and what is left over")
    # The time line: the estimation window, then the event window.
    ax.add_patch(Rectangle((0.4, 5.6), 7.6, 0.6, fc=_PALE, ec=_INK, lw=0.8))
    ax.text(
        4.2,
        5.9,
        f"estimation window: {m.n} trading days, "
        f"{study.estimation_start:%-d %b %Y} to {study.estimation_end:%-d %b %Y}",
        ha="center",
        va="center",
        fontsize=8,
    )
    offsets = list(range(lo, hi + 1))
    for i, (offset, date) in enumerate(zip(offsets, study.days.index, strict=True)):
        hot = offset == 0
        ax.add_patch(
            Rectangle(
                (8.4 + i * 1.25, 5.6),
                1.15,
                0.6,
                fc=COLORS["highlight"] if hot else "white",
                alpha=0.5 if hot else 1,
                ec=_INK,
                lw=0.8,
            )
        )
        ax.text(8.975 + i * 1.25, 5.9, f"{date:%a %-d %b}", ha="center", va="center", fontsize=7.5)
    ax.text(
        8.4 + len(offsets) * 0.625,
        6.55,
        f"event window ({lo}, …, {hi:+d})",
        ha="center",
        fontsize=8,
    )
    ax.annotate(
        "", (14, 5.3), (0.4, 5.3), arrowprops=dict(arrowstyle="-|>", color="#999999", lw=0.8)
    )
    ax.text(13.9, 5.05, "trading days", ha="right", va="top", fontsize=7, color="#555555")
    steps = [
        (
            "1. fit the market model",
            f"$r_{{NVDA}} = \\alpha + \\beta\\, r_{{{P.market}}} + \\varepsilon$\n"
            f"$\\beta$ = {m.beta:.2f}, residual $\\sigma$ = {100 * m.resid_std:.2f}%",
        ),
        (
            "2. expected return",
            f"$\\alpha + \\beta \\times$ ({_pct(market_move)})\n= {_pct(day['expected'])}",
        ),
        (
            "3. abnormal return",
            f"actual − expected\n{_pct(day['actual'])} − ({_pct(day['expected'])})\n"
            f"= {_pct(day['abnormal'])}",
        ),
        (
            "4. sum over the window",
            f"CAR = $\\sum_t AR_t$ = {_pct(study.car)}\n"
            f"$t = CAR / (\\sigma\\sqrt{{L}})$ = {study.car_t:.1f}, $L$ = {len(study.days)}",
        ),
    ]
    for i, (head, body) in enumerate(steps):
        x = 1.85 + i * 3.45
        _box(ax, (x, 2.6), 3.1, 2.2, "", color=COLORS["highlight"] if i == 2 else _INK)
        ax.text(x, 3.45, head, ha="center", va="center", fontsize=8.5, weight="bold")
        ax.text(x, 2.35, body, ha="center", va="center", fontsize=8, linespacing=1.5)
        if i:
            _arrow(ax, (x - 1.9, 2.6), (x - 1.58, 2.6))
    _arrow(ax, (4.2, 5.5), (1.85, 3.75), color="#999999")
    _arrow(ax, (8.975 + (0 - lo) * 1.25, 5.5), (5.3, 3.75), color="#999999")
    ax.text(
        0.4,
        0.75,
        f"NVIDIA against the {P.market}, {study.event_date:%-d %B %Y}: expected "
        f"{_pct(day['expected'])}, actual {_pct(day['actual'])}; the rest is abnormal.",
        fontsize=8,
        color="#555555",
    )
    add_source(
        fig,
        "effllm.markets.event_study on effllm/data/prices.csv (exchange closes), with Lab 5's "
        "preset; method after MacKinlay (1997)",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# (k) Token economics (Lab 6)


def token_economics() -> Figure:
    """What the compute in a price per million output tokens is made of, in Lab 6's model:
    2 FLOPs per active parameter per token, a peak times a utilisation, a GPU-hour price; and
    the list price it is set against."""
    P = presets.PRESETS["token_economics"]["cpu"]
    peak, price_hour = economics.H800_BF16_DENSE_PEAK_FLOPS, v3.USD_PER_GPU_HOUR
    flops_token = economics.decode_flops_per_token(v3.ACTIVE_PARAMS)
    tps = economics.tokens_per_second_per_gpu(v3.ACTIVE_PARAMS, peak, P.serving_utilisation)
    cost = economics.serving_cost_per_million_tokens(tps, price_hour)
    dense_tps = economics.tokens_per_second_per_gpu(v3.TOTAL_PARAMS, peak, P.serving_utilisation)
    dense_cost = economics.serving_cost_per_million_tokens(dense_tps, price_hour)
    r1 = pricing.prices_for("DeepSeek-R1")
    fig, ax = _canvas((9.6, 4.6), 14, 6.8)
    ax.set_title("A price per million tokens, taken apart: the compute in one output token")
    boxes = [
        ((1.7, 5.2), f"active parameters\n$N$ = {v3.ACTIVE_PARAMS / 1e9:.0f}B per token"),
        (
            (1.7, 3.3),
            f"peak {peak / 1e12:,.0f} TFLOP/s per GPU\n× utilisation "
            f"{P.serving_utilisation:.0%} (assumed)",
        ),
        ((1.7, 1.4), f"GPU-hour price\n\\${price_hour:g} (V3 report)"),
    ]
    for xy, text in boxes:
        _box(ax, xy, 3.2, 1.1, text, size=8)
    _box(
        ax,
        (5.3, 5.2),
        2.6,
        1.1,
        f"FLOPs per token\n$2N$ = {flops_token / 1e9:.0f} GFLOP",
        size=8,
        fill=_PALE,
    )
    _arrow(ax, (3.3, 5.2), (4.0, 5.2))
    _box(
        ax,
        (5.3, 3.3),
        2.6,
        1.1,
        f"tokens per second\nper GPU = {tps:,.0f}",
        size=8,
        fill=_PALE,
    )
    _arrow(ax, (3.3, 3.3), (4.0, 3.3))
    _arrow(ax, (5.3, 4.65), (5.3, 3.85))
    _box(
        ax,
        (9.2, 2.35),
        3.9,
        1.5,
        f"compute cost per\nmillion output tokens\n"
        f"= \\${price_hour:g} / ({tps:,.0f} × 3,600) × 10⁶\n"
        f"= \\${cost:.2f}",
        size=8,
        color=COLORS["deepseek"],
        weight="bold",
    )
    _arrow(ax, (6.6, 3.3), (7.25, 2.7))
    _arrow(ax, (3.3, 1.4), (7.25, 2.0))
    _box(
        ax,
        (12.5, 4.9),
        2.6,
        1.1,
        f"R1's list price, output:\n\\${r1.output:.2f} per million",
        size=8,
        color=COLORS["highlight"],
    )
    ax.annotate(
        "",
        (12.5, 4.3),
        (10.6, 3.15),
        arrowprops=dict(arrowstyle="<->", color="#999999", lw=0.8),
    )
    ax.text(
        10.7,
        4.35,
        "the gap: memory, input tokens,\nidle hours, power, staff,\nresearch and margin",
        fontsize=7.5,
        color="#555555",
        ha="right",
    )
    ax.text(
        5.0,
        0.55,
        f"a dense model of all {v3.TOTAL_PARAMS / 1e9:.0f}B parameters: \\${dense_cost:.2f} "
        f"({v3.TOTAL_PARAMS / v3.ACTIVE_PARAMS:.1f}× the FLOPs per token)",
        fontsize=8,
        color="#555555",
    )
    add_source(
        fig,
        "effllm.economics (2 FLOPs per active parameter per token; the H800's peak assumed from "
        "the H100's); V3 report for N and the GPU-hour price; effllm/data/api_prices.csv; "
        "Lab 6's preset for the utilisation",
    )
    return fig


# Multi-token prediction and self-speculative decoding


def mtp() -> Figure:
    """V3's MTP module of depth 1 beside the main model (shared embedding and head), and the
    draft-and-verify loop of self-speculative decoding that reuses it. Sizes from Lab 8's cpu
    preset and :mod:`effllm.deepseek_v3`."""
    lab = presets.PRESETS["mtp"]["cpu"]
    fig, ax = _canvas((10.4, 5.6), 14.6, 7.8)
    ax.text(0.1, 7.45, "Training: the MTP module (depth 1)", fontsize=10, weight="bold")
    ax.text(7.9, 7.45, "Decoding: draft and verify", fontsize=10, weight="bold")
    # The main model, left column.
    _box(ax, (1.5, 0.6), 2.0, 0.55, "tokens $t_1 \\dots t_i$", size=8.5)
    _box(ax, (1.5, 1.6), 2.0, 0.6, "embedding Emb", fill=_PALE, size=8.5)
    _box(ax, (1.5, 3.1), 2.0, 1.5, "main model\n$n$ blocks,\nfinal RMSNorm", size=8.5)
    _box(ax, (1.5, 5.0), 2.0, 0.6, "output head", fill=_PALE, size=8.5)
    _box(ax, (1.5, 6.2), 2.0, 0.55, "$P(t_{i+1})$", size=8.5)
    for y0, y1 in [(0.9, 1.3), (1.9, 2.35), (3.85, 4.7), (5.3, 5.92)]:
        _arrow(ax, (1.5, y0), (1.5, y1))
    ax.text(1.62, 4.25, "$h_i^0$", fontsize=8.5)
    # The MTP module, right column.
    x = 4.9
    _box(ax, (x + 0.55, 0.6), 1.5, 0.55, "token $t_{i+1}$", size=8.5)
    _box(ax, (x + 0.55, 1.6), 1.5, 0.6, "Emb (shared)", fill=_PALE, size=8.5)
    _box(ax, (x - 1.0, 2.75), 1.3, 0.55, "RMSNorm", size=8.5)
    _box(ax, (x + 0.55, 2.75), 1.3, 0.55, "RMSNorm", size=8.5)
    _box(ax, (x, 3.8), 3.3, 0.65, "concatenate, project\n$M_1$: $2d \\to d$", size=8.5)
    _box(ax, (x, 4.85), 3.3, 0.6, "TRM$_1$: one transformer block", size=8.5)
    _box(ax, (x, 5.85), 3.3, 0.6, "RMSNorm, output head (shared)", fill=_PALE, size=8.5)
    _box(ax, (x, 6.85), 1.6, 0.55, "$P(t_{i+2})$", size=8.5, color=COLORS["moe"])
    _arrow(ax, (2.5, 3.9), (x - 1.0, 3.03))
    _arrow(ax, (x + 0.55, 0.9), (x + 0.55, 1.3))
    _arrow(ax, (x + 0.55, 1.9), (x + 0.55, 2.47))
    for x0 in (x - 1.0, x + 0.55):
        _arrow(ax, (x0, 3.03), (x0, 3.47))
    for y0, y1 in [(4.13, 4.55), (5.15, 5.55), (6.15, 6.57)]:
        _arrow(ax, (x, y0), (x, y1))
    for y in (1.6, 5.0):  # the same embedding and head
        ax.plot(
            [2.5, x - 0.2 if y == 1.6 else x - 1.65],
            [y, y if y == 1.6 else 5.75],
            ls=":",
            color=COLORS["moe"],
            lw=1.2,
        )
    ax.text(3.35, 1.25, "same weights", fontsize=7.5, color=COLORS["moe"], ha="center")
    ax.text(
        0.1,
        -0.35,
        f"loss $\\mathcal{{L}}_{{main}} + \\lambda\\,\\mathcal{{L}}_{{MTP}}$: V3 uses "
        f"{v3.MTP_DEPTH} module, $\\lambda$ = {v3.MTP_LAMBDA[0]:g} then {v3.MTP_LAMBDA[1]:g}; "
        f"Lab 8: $d$ = {lab.d_model}, $\\lambda$ = {lab.mtp.lam:g}",
        fontsize=8,
        color="#555555",
    )
    # The decoding loop.
    cx = 11.2
    _box(
        ax,
        (cx, 6.6),
        5.6,
        0.75,
        "main model has chosen $t$;\nMTP module drafts $d \\sim q$",
        size=8.5,
    )
    _box(
        ax,
        (cx, 5.25),
        5.6,
        0.9,
        "one main forward pass over $[t, d]$ (KV cache):\n"
        "$p$ at the draft's position, $p'$ after it",
        size=8.5,
        fill=_PALE,
    )
    _box(
        ax,
        (cx, 3.85),
        5.6,
        0.9,
        "keep $d$ with probability $\\min(1, p(d)/q(d))$\n(greedy: keep $d$ if $d = \\arg\\max p$)",
        size=8.5,
        color=COLORS["highlight"],
    )
    _box(
        ax,
        (cx - 1.45, 2.15),
        2.7,
        1.15,
        "kept: emit $d$\nand $t' \\sim p'$\n2 tokens",
        size=8.5,
        color=COLORS["hyperscalers"],
    )
    _box(
        ax,
        (cx + 1.45, 2.15),
        2.7,
        1.15,
        "rejected: emit\n$t' \\sim$ norm$(\\max(0, p - q))$;\ndrop $d$ from the cache",
        size=8.0,
        color=COLORS["chips"],
    )
    for y0, y1 in [(6.22, 5.72), (4.8, 4.32)]:
        _arrow(ax, (cx, y0), (cx, y1))
    _arrow(ax, (cx - 0.6, 3.4), (cx - 1.45, 2.75))
    _arrow(ax, (cx + 0.6, 3.4), (cx + 1.45, 2.75))
    ax.add_patch(
        FancyArrowPatch(
            (cx + 2.85, 2.15),
            (cx + 2.85, 6.6),
            arrowstyle="-|>",
            mutation_scale=10,
            color="#777777",
            lw=1.0,
            connectionstyle="arc3,rad=-0.35",
        )
    )
    ax.text(cx + 3.25, 4.4, "draft\nagain", fontsize=7.5, color="#555555", ha="center")
    ax.text(
        cx,
        0.85,
        f"tokens per main pass = 1 + share of drafts kept\nV3: {v3.MTP_ACCEPTANCE[0]:.0%}"
        f"-{v3.MTP_ACCEPTANCE[1]:.0%} kept, {v3.MTP_TPS_SPEEDUP:g}x the tokens per second",
        fontsize=8,
        ha="center",
        va="center",
        color="#555555",
    )
    return _finish(
        fig,
        "Multi-token prediction: train a second guess, then use it as a draft",
        x=0.01,
        top=1,
        source=(
            "DeepSeek-V3 report §2.2, §4.2 and §5.4.3; Leviathan et al. 2023 and Chen et al. 2023 "
            "(the acceptance rule); effllm.mtp, effllm.speculative and Lab 8's cpu preset"
        ),
    )


# ---------------------------------------------------------------------------------------------
# Distillation against RL (Lab 9)


def distillation() -> Figure:
    """Lab 9's pipeline: the teacher's RL, its samples, the filter, and the four ways to train
    the student from one starting point. Sizes from ``presets.PRESETS["distillation"]["cpu"]``.
    """
    lab = presets.PRESETS["distillation"]["cpu"]
    t, s = lab.teacher, lab.student
    fig, ax = _canvas((9.6, 5.4), 14, 8.0)
    ax.set_title("Distillation against RL: four ways to train one small student", pad=4)
    teacher_color, student_color = COLORS["deepseek"], COLORS["hyperscalers"]
    # The teacher's row: Lab 4's recipe, then rejection sampling.
    _box(ax, (1.3, 6.8), 2.2, 1.0, f"teacher warm-up\n{t.sft_steps} SFT steps", color=teacher_color)
    _arrow(ax, (2.45, 6.8), (3.1, 6.8))
    _box(
        ax,
        (4.2, 6.8),
        2.0,
        1.0,
        f"teacher GRPO\n{t.rl.steps} steps\nwidth {t.model.d_model}",
        color=teacher_color,
        fill=_PALE,
    )
    _arrow(ax, (5.25, 6.8), (5.95, 6.8))
    _box(
        ax,
        (7.1, 6.8),
        2.1,
        1.0,
        f"sample k = {lab.samples_per_prompt}\nper prompt",
        color=teacher_color,
    )
    _arrow(ax, (8.2, 6.8), (8.85, 6.8))
    _box(ax, (9.95, 6.8), 2.0, 1.0, "filter:\nkeep if correct", color=COLORS["highlight"])
    _arrow(ax, (11.0, 6.8), (11.6, 6.8))
    _box(ax, (12.7, 6.8), 2.0, 1.0, "kept\ncompletions", fill=_PALE)
    ax.text(
        7.1,
        7.65,
        f"the prompts of the student's GRPO run ({lab.rl.steps} x {lab.rl.prompts_per_step})",
        fontsize=7.5,
        ha="center",
        color="#555555",
    )
    # The student's start and its four paths.
    _box(
        ax,
        (1.3, 3.0),
        2.2,
        1.2,
        f"student start\nwidth {s.d_model}\n{lab.student_warmup_steps} tagged demos",
        color=student_color,
    )
    paths = [
        (4.6, f"(a) SFT on kept\n{lab.sft_steps} steps", True),
        (3.4, f"(b) GRPO directly\n{lab.rl.steps} steps", False),
        (2.2, f"(c) SFT {lab.mixed_sft_steps}, then\nGRPO {lab.mixed_rl_steps} steps", True),
        (1.0, f"(d) KL to teacher's logits\nτ = {lab.temperature:g}, {lab.sft_steps} steps", True),
    ]
    for y, text, uses_data in paths:
        _arrow(ax, (2.45, 3.0), (7.5, y), color="#999999")
        _box(ax, (8.9, y), 2.7, 0.85, text, color=student_color, size=8.5)
        if uses_data:
            _arrow(ax, (12.7, 6.25), (10.3, y), color=COLORS["highlight"], alpha=0.6)
    _arrow(ax, (4.2, 6.25), (7.5, 1.15), color=teacher_color, linestyle="--", alpha=0.8)
    ax.text(
        5.05, 4.2, "teacher's logits, (d) only", fontsize=7.5, color=teacher_color, rotation=-57
    )
    ax.text(
        12.9,
        2.2,
        "each path:\nheld-out pass@1,\nand its FLOPs,\nthe teacher's\nincluded",
        fontsize=8,
        ha="center",
        va="center",
        color="#555555",
    )
    add_source(
        fig,
        "R1 report (distilled models: SFT on the teacher's filtered samples); Hinton et al. 2015 "
        "(soft labels); sizes from Lab 9's cpu preset (effllm.presets)",
    )
    return fig


FIGURES: dict[str, Callable[[], Figure]] = {
    "moe_layer": moe_layer,
    "kv_cache_to_scale": kv_cache_to_scale,
    "mla_projections": mla_projections,
    "grpo_step": grpo_step,
    "training_cost_arithmetic": training_cost_arithmetic,
    "timeline": timeline,
    "rules_and_releases": rules_and_releases,
    "capex_by_company": capex_by_company,
    "press_claims": press_claims,
    "chips_against_rules": chips_against_rules,
    "fp8_block_scaling": fp8_block_scaling,
    "event_study_steps": event_study_steps,
    "token_economics": token_economics,
    "mtp": mtp,
    "distillation": distillation,
}
