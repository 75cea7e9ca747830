import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from effllm import book, plotting


def test_use_style_sets_the_course_look():
    plotting.use_style()
    assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.PALETTE[0]


def _source_lines(fig):
    return [a.get_text() for a in fig.artists if a.get_text().startswith("Source: ")]


def test_add_source_writes_a_source_line():
    fig = plt.figure()
    plotting.add_source(fig, "DeepSeek-V3 report, Table 1")
    assert _source_lines(fig) == ["Source: DeepSeek-V3 report, Table 1"]
    with pytest.raises(ValueError):
        plotting.add_source(fig, "  ")
    plt.close(fig)


def test_source_line_sits_below_the_x_axis_label_of_a_short_figure():
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.set_xlabel("cost, million USD")
    plotting.add_source(fig, "a report")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    source = fig.artists[0].get_window_extent(renderer)
    assert source.y1 < ax.xaxis.label.get_window_extent(renderer).y0
    plt.close(fig)


def test_describe_says_what_a_figure_shows():
    fig, axes = plt.subplots(1, 2)
    axes[0].set_title("Pre-training cost", loc="left")
    axes[0].set_ylabel("million USD")
    axes[1].set_title("Wall-clock time")
    fig.suptitle("The dense model costs more")
    plotting.add_source(fig, "a report")
    assert plotting.describe(fig) == (
        "The dense model costs more. Panel 1: Pre-training cost; vertical axis: million USD. "
        "Panel 2: Wall-clock time. Source: a report."
    )
    plt.close(fig)


def test_describe_gives_nothing_for_a_figure_without_a_title():
    fig, ax = plt.subplots()
    ax.set_xlabel("x")
    assert plotting.describe(fig) is None
    plt.close(fig)


def test_in_a_notebook_a_figure_s_text_form_is_its_description(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    monkeypatch.setattr(plotting, "get_ipython", lambda: shell)
    plotting.use_style()
    fig, ax = plt.subplots()
    ax.set_title("Cost by stage")
    data, _ = shell.display_formatter.format(fig)
    assert data["text/plain"] == "Cost by stage."  # what the book uses as the image's alt text
    plt.close(fig)


def test_glue_emits_what_myst_nb_reads(monkeypatch):
    shown = []
    monkeypatch.setattr(book, "display", lambda data, raw, metadata: shown.append((data, metadata)))
    import numpy as np

    assert book.glue("cost_musd", np.float64(5.576)) is None  # a cell ending in glue echoes nothing
    data, metadata = shown[0]
    assert data == {book.GLUE_PREFIX + "text/plain": "5.576"}
    assert metadata["scrapbook"] == {"name": "cost_musd", "mime_prefix": book.GLUE_PREFIX}
    book.glue("shown", 1, display_it=True)
    assert shown[1][0] == {"text/plain": "1"}
    with pytest.raises(ValueError):
        book.glue("not a name", 1)


def test_glue_all_glues_each_value_in_order_or_nothing(monkeypatch):
    shown = []
    monkeypatch.setattr(book, "display", lambda data, raw, metadata: shown.append((data, metadata)))
    import numpy as np

    assert book.glue_all({"a_pct": np.float32(1.5), "b": 2}) is None
    assert [m["scrapbook"]["name"] for _, m in shown] == ["a_pct", "b"]
    assert shown[0][0] == {book.GLUE_PREFIX + "text/plain": "1.5"}
    with pytest.raises(ValueError, match="not a name"):
        book.glue_all({"fine": 1, "not a name": 2})
    assert len(shown) == 2, "a bad name must glue nothing"


def test_glue_matches_myst_nb_when_installed(monkeypatch):
    glue_mod = pytest.importorskip("myst_nb.ext.glue")
    ours, theirs = [], []
    monkeypatch.setattr(book, "display", lambda d, raw, metadata: ours.append((d, metadata)))
    monkeypatch.setattr(
        glue_mod, "ipy_display", lambda d, raw, metadata: theirs.append((d, metadata))
    )
    book.glue("x", 2.5)
    glue_mod.glue("x", 2.5, display=False)
    assert ours == theirs


def test_the_labs_charts_are_titled_sourced_and_drawn_from_their_inputs():
    import pandas as pd

    from effllm import charts, economics, markets

    plotting.use_style()
    cost = economics.v3_training_cost(2.0)
    fig = charts.v3_cost_by_stage(cost, 2.0, cost["cost_usd"].iloc[-1])
    stages = cost[cost["stage"] != "total"]
    widths = [bar.get_width() for bar in fig.axes[0].patches]
    assert widths == list(stages["cost_usd"] / 1e6)
    assert "Source: DeepSeek-V3" in plotting.describe(fig)
    plt.close(fig)
    vol = markets.volume(markets.load_prices(), "NVDA")
    event = pd.Timestamp("2025-01-27")
    fig = charts.volume_bars(vol, float(vol.loc[:event].median()), event, "exchange volume")
    highlighted = [
        b
        for b in fig.axes[0].patches
        if b.get_facecolor()[:3] != fig.axes[0].patches[0].get_facecolor()[:3]
    ]
    assert len(highlighted) == 1 and "Source: exchange volume" in plotting.describe(fig)
    plt.close(fig)
