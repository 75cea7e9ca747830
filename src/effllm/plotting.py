"""The course's figure style: one look for every figure, and a line naming the data source."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# A colour-blind-safe palette (Okabe & Ito), in the order series are drawn.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
# Fixed colours for things that recur across chapters, so a reader learns them once.
COLORS = {
    "deepseek": "#0072B2",
    "openai": "#D55E00",
    "moe": "#0072B2",
    "dense": "#999999",
    "chips": "#D55E00",
    "hyperscalers": "#009E73",
    "index": "#555555",
    "highlight": "#CC79A7",
}

_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "lines.linewidth": 1.8,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
}


def use_style() -> None:
    """Apply the course style to every figure drawn after this call."""
    mpl.rcParams.update(_STYLE)


def add_source(fig: Figure, text: str) -> None:
    """Write ``Source: text`` under the figure, left-aligned, in small grey type.

    Every figure in the course names where its numbers come from: a paper, a data file, or the
    lab's own run.
    """
    if not text or not text.strip():
        raise ValueError("a figure's source must be named")
    fig.text(
        0.0,
        -0.02,
        f"Source: {text.strip()}",
        ha="left",
        va="top",
        fontsize=8,
        color="#555555",
        wrap=True,
    )


def show() -> None:
    """Show the current figure (``plt.show``); the name keeps lab cells uniform."""
    plt.show()
