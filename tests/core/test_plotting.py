"""Tests of prunebound.plotting: bands against numpy/scipy, figure content, PDF/PNG files, CSV round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.colors import to_hex

from prunebound.errors import DataError, InvalidParameterError
from prunebound.plotting import (
    CAPTION_GID,
    COLUMN_WIDTH,
    OKABE_ITO,
    add_caption,
    fix_legends,
    legend_overlaps,
    line_with_band,
    mark_paper,
    mean_band,
    new_figure,
    paper_rc,
    read_csv,
    savefig,
    styled,
    write_csv,
)

Y = np.array([[1.0, 2.0, 4.0], [3.0, 2.0, 0.0], [2.0, 5.0, 2.0]])


def test_mean_band_std_matches_numpy():
    m, lo, hi = mean_band(Y, band="std")
    np.testing.assert_allclose(m, Y.mean(0), rtol=1e-15)
    np.testing.assert_allclose(hi - m, Y.std(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(m - lo, Y.std(0, ddof=1), rtol=1e-12)


def test_mean_band_ci_matches_scipy_t_interval():
    from scipy import stats

    m, lo, hi = mean_band(Y, band="ci", level=0.9)
    for j in range(Y.shape[1]):
        a, b = stats.t.interval(0.9, Y.shape[0] - 1, loc=Y[:, j].mean(), scale=stats.sem(Y[:, j]))
        assert lo[j] == pytest.approx(a, rel=1e-12) and hi[j] == pytest.approx(b, rel=1e-12)


def test_mean_band_ignores_nan_and_handles_one_seed():
    y = Y.copy()
    y[0, 1] = np.nan
    m, lo, hi = mean_band(y)
    assert m[1] == pytest.approx(3.5)
    assert hi[1] - m[1] == pytest.approx(np.std([2.0, 5.0], ddof=1))
    m1, lo1, hi1 = mean_band(Y[0])
    np.testing.assert_array_equal(m1, Y[0])
    np.testing.assert_array_equal(lo1, hi1)
    m2, lo2, hi2 = mean_band(Y, band="minmax")
    np.testing.assert_array_equal(lo2, Y.min(0))
    np.testing.assert_array_equal(hi2, Y.max(0))


def test_mean_band_errors():
    with pytest.raises(DataError):
        mean_band([[np.nan, 1.0]])
    with pytest.raises(InvalidParameterError, match="'se'"):
        mean_band(Y, band="iqr")
    with pytest.raises(InvalidParameterError, match="level"):
        mean_band(Y, band="ci", level=1.5)


def test_line_with_band_draws_mean_line_and_band_in_palette():
    fig, ax = new_figure()
    l1 = line_with_band(ax, [0, 1, 2], Y, label="a")
    l2 = line_with_band(ax, [0, 1, 2], Y + 1, label="b")
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 2
    np.testing.assert_allclose(l1.get_ydata(), Y.mean(0))
    assert to_hex(l1.get_color()) == OKABE_ITO[0].lower() and to_hex(l2.get_color()) == OKABE_ITO[1].lower()
    assert l1.get_marker() != l2.get_marker()
    with pytest.raises(InvalidParameterError, match="points"):
        line_with_band(ax, [0, 1], Y)


def test_new_figure_is_column_width_with_paper_fonts():
    fig, ax = new_figure()
    w, h = fig.get_size_inches()
    assert w == pytest.approx(COLUMN_WIDTH) and 0 < h < w
    assert paper_rc()["pdf.fonttype"] == 42

    @styled
    def make():
        f, a = new_figure()
        a.plot([0, 1], [0, 1], label="x")
        return f, a.legend()

    _, leg = make()
    assert leg.get_texts()[0].get_fontsize() == pytest.approx(paper_rc()["legend.fontsize"])


def test_savefig_writes_vector_pdf_and_png(tmp_path):
    fig, ax = new_figure()
    line_with_band(ax, [0, 1, 2], Y, label="a")
    paths = savefig(fig, tmp_path / "figs", "demo")
    assert [p.name for p in paths] == ["demo.pdf", "demo.png"]
    pdf, png = (p.read_bytes() for p in paths)
    assert pdf.startswith(b"%PDF") and png.startswith(b"\x89PNG")
    assert b"/Type /Font" in pdf or b"/FontFile2" in pdf  # text is text, not pixels
    assert b"/Subtype /Image" not in pdf  # the curves are vector paths
    # reruns give identical bytes (no timestamps)
    again = savefig(fig, tmp_path / "figs2", "demo")
    assert again[0].read_bytes() == pdf
    with pytest.raises(InvalidParameterError):
        savefig(fig, tmp_path, "a/b")


def test_csv_round_trip(tmp_path):
    rows = [{"m": "a", "x": 0.1, "n": 3, "ok": True}, {"m": "b", "x": math.inf, "n": 4, "extra": None}]
    p = write_csv(tmp_path / "t.csv", rows)
    assert p.read_text().splitlines()[0] == "m,x,n,ok,extra"
    back = read_csv(p)
    assert back[0] == {"m": "a", "x": 0.1, "n": 3, "ok": True, "extra": None}
    assert back[1]["x"] == math.inf and back[1]["ok"] is None
    x = 0.1 + 0.2  # repr round-trips exactly
    assert read_csv(write_csv(tmp_path / "u.csv", [{"x": x}]))[0]["x"] == x


def test_mean_band_se_is_std_over_sqrt_n():
    m, lo, hi = mean_band(Y, band="se")
    np.testing.assert_allclose(hi - m, Y.std(0, ddof=1) / np.sqrt(Y.shape[0]), rtol=1e-12)
    from scipy import stats

    np.testing.assert_allclose(hi - m, stats.sem(Y, axis=0), rtol=1e-12)


def test_pdf_fonts_are_embedded_truetype(tmp_path):
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1], label="δ = 0.05")
    ax.legend()
    add_caption(fig, "Model: MLP; data: digits (n = 100); 5 seeds.")
    pdf = savefig(fig, tmp_path, "f")[0].read_bytes()
    assert b"/FontFile2" in pdf  # TrueType program embedded (Type 42)
    assert b"/Type3" not in pdf and b"/Subtype /Image" not in pdf


def _fig_with_legend(loc, **kw):
    fig, ax = new_figure()
    ax.plot([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0], marker="o", label="rising")
    ax.plot([0, 1, 2, 3], [3.0, 2.9, 3.0, 2.95], marker="s", label="flat high")
    ax.legend(loc=loc, **kw)
    return fig, ax


def test_legend_overlaps_sees_a_covered_point_and_fix_moves_the_legend_out():
    fig, ax = _fig_with_legend("upper left")  # the flat line's first points sit under the legend
    found = legend_overlaps(fig)
    assert found and any("flat high" in f for f in found)
    # independent check in display coordinates: the legend box contains the first marker of "flat high"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    bb = ax.get_legend().get_window_extent()
    x, y = ax.transData.transform((0.0, 3.0))
    assert bb.contains(x, y)
    assert fix_legends(fig) == []
    lg = ax.get_legend()
    assert [t.get_text() for t in lg.get_texts()] == ["rising", "flat high"]  # same entries, moved outside
    assert lg.get_window_extent().x0 >= ax.get_window_extent().x1


def test_legend_overlaps_is_empty_for_a_legend_off_the_data_and_fix_keeps_it():
    fig, ax = _fig_with_legend("lower right")
    assert legend_overlaps(fig) == []
    before = ax.get_legend()
    assert fix_legends(fig) == [] and ax.get_legend() is before


def test_legend_overlaps_counts_scatter_points_and_bars():
    fig, ax = new_figure()
    ax.bar([0, 1, 2], [0.9, 0.95, 0.9], label="bars")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper center")
    assert any("bar" in f for f in legend_overlaps(fig))
    fig2, ax2 = new_figure()
    ax2.scatter([0.05, 0.5, 1.0], [0.95, 0.1, 0.1], label="pts")
    ax2.set_xlim(0, 1)
    ax2.set_ylim(0, 1)
    ax2.legend(loc="upper left")
    assert any("pts" in f for f in legend_overlaps(fig2))


def test_add_caption_wraps_replaces_and_is_saved(tmp_path):
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    long = "Model: MLP 64-64-10; data: digits (n = 1348 train, 449 test); 5 seeds; " * 3
    add_caption(fig, long)
    t = add_caption(fig, long)  # a second call replaces the first
    caps = [x for x in fig.texts if x.get_gid() == CAPTION_GID]
    assert caps == [t]
    assert t.get_text().replace("\n", " ").split() == long.split()
    assert max(len(s) for s in t.get_text().splitlines()) < len(long)  # wrapped to the figure width
    png = savefig(fig, tmp_path, "c")[1]
    import matplotlib.image as mpimg

    h_with = mpimg.imread(png).shape[0]
    t.remove()
    h_without = mpimg.imread(savefig(fig, tmp_path, "d")[1]).shape[0]
    assert h_with > h_without  # the tight bounding box includes the caption under the axes


def test_mark_paper_draws_one_labelled_star():
    fig, ax = new_figure()
    ln = mark_paper(ax, [100.0], [21.0])
    assert ln.get_marker() == "*" and ln.get_label() == "paper" and ln.get_linestyle() == "None"
    np.testing.assert_array_equal(ln.get_xydata(), [[100.0, 21.0]])


def test_csv_writes_numpy_scalars_as_plain_numbers(tmp_path):
    p = write_csv(tmp_path / "n.csv", [{"a": np.float64(0.25), "b": np.int64(3), "c": np.bool_(True)}])
    assert p.read_text().splitlines()[1] == "0.25,3,true"
