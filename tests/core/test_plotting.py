"""Tests of prunebound.plotting: bands against numpy/scipy, figure content, PDF/PNG files, CSV round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.colors import to_hex

from prunebound.errors import DataError, InvalidParameterError
from prunebound.plotting import (
    COLUMN_WIDTH,
    OKABE_ITO,
    line_with_band,
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
    with pytest.raises(InvalidParameterError, match="band"):
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
