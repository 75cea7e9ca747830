"""The course's figure style: one look for every figure, a line naming the data source, and a
description in words that the book uses as the figure's alt text."""

from __future__ import annotations

import matplotlib as mpl
from IPython import get_ipython
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

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
    """Apply the course style to every figure drawn after this call.

    Under IPython (a lab's kernel) it also makes a figure's plain-text form its
    :func:`describe` text. The book build turns that text into the alt text of the figure's
    image, so a reader who cannot see the plot learns what it shows.
    """
    mpl.rcParams.update(_STYLE)
    shell = get_ipython()
    if shell is not None:
        # As a MIME-bundle formatter: the inline backend drops the per-MIME formatters of Figure
        # when it starts (at the first plot, after this call); it keeps this one. The PNG is still
        # drawn by the backend, as it only fills the MIME types that this bundle leaves out.
        shell.display_formatter.mimebundle_formatter.for_type(Figure, _text_bundle)


def _text_bundle(fig: Figure) -> dict[str, str]:
    return {"text/plain": describe(fig) or repr(fig)}


def _title(ax: Axes) -> str:
    # The course style puts titles on the left; any of the three positions may hold one.
    return " ".join(t for t in (ax.get_title(loc) for loc in ("left", "center", "right")) if t)


def describe(fig: Figure) -> str | None:
    """Say in words what ``fig`` shows: its titles, axis labels and source line.

    Returns None for a figure without any title, which the course's figure rules do not allow
    and which cannot be described from its parts.
    """
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    titles = [_title(ax) for ax in fig.axes]
    if not suptitle and not any(titles):
        return None
    panels = []
    for ax, title in zip(fig.axes, titles, strict=True):
        labels = [
            f"{name} axis: {label}"
            for name, label in (("horizontal", ax.get_xlabel()), ("vertical", ax.get_ylabel()))
            if label
        ]
        panels.append("; ".join(([title] if title else []) + labels))
    if len(panels) > 1:
        panels = [f"Panel {i}: {text}" for i, text in enumerate(panels, 1) if text]
    texts = [*fig.texts, *(a for a in fig.artists if isinstance(a, Text))]  # add_source: artists
    notes = [t.get_text() for t in texts if t is not fig._suptitle and t.get_text()]
    parts = ([suptitle] if suptitle else []) + panels + notes
    return " ".join(p if p.endswith(".") else p + "." for p in parts if p)


def add_source(fig: Figure, text: str) -> None:
    """Write ``Source: text`` under the figure, left-aligned, in small grey type.

    Every figure in the course names where its numbers come from: a paper, a data file, or the
    lab's own run. The line sits just below the lowest axis label, tick label or legend, wherever
    the layout puts them: at a fixed position it would run through the x-axis label of a short
    figure.
    """
    if not text or not text.strip():
        raise ValueError("a figure's source must be named")
    source = Annotation(
        f"Source: {text.strip()}",
        xy=(0, 0),  # x: the figure's left edge; y: the bottom of what is drawn (at draw time)
        xycoords=("figure fraction", lambda renderer: _drawn_extent(fig, renderer)),
        xytext=(0, -6),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=8,
        color="#555555",
        wrap=True,
        annotation_clip=False,
    )
    fig.add_artist(source)


def _drawn_extent(fig: Figure, renderer: RendererBase) -> Bbox:
    """Display-space box around the figure's panels (with their labels) and figure legends."""
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]
    boxes += [legend.get_window_extent(renderer) for legend in fig.legends]
    return Bbox.union(boxes) if boxes else fig.bbox
