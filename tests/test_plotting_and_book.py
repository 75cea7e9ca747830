import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from effllm import book, plotting


def test_use_style_sets_the_course_look():
    plotting.use_style()
    assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.PALETTE[0]


def test_add_source_writes_a_source_line():
    fig = plt.figure()
    plotting.add_source(fig, "DeepSeek-V3 report, Table 1")
    assert [t.get_text() for t in fig.texts] == ["Source: DeepSeek-V3 report, Table 1"]
    with pytest.raises(ValueError):
        plotting.add_source(fig, "  ")
    plt.close(fig)


def test_glue_emits_what_myst_nb_reads(monkeypatch):
    shown = []
    monkeypatch.setattr(book, "display", lambda data, raw, metadata: shown.append((data, metadata)))
    import numpy as np

    assert book.glue("cost_musd", np.float64(5.576)) == 5.576
    data, metadata = shown[0]
    assert data == {book.GLUE_PREFIX + "text/plain": "5.576"}
    assert metadata["scrapbook"] == {"name": "cost_musd", "mime_prefix": book.GLUE_PREFIX}
    book.glue("shown", 1, display_it=True)
    assert shown[1][0] == {"text/plain": "1"}
    with pytest.raises(ValueError):
        book.glue("not a name", 1)


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
