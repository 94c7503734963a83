"""Paper-style figures: vector PDF + PNG, readable at one-column width, colour-blind-safe colours.

* :func:`paper_style` -- a ``matplotlib.rc_context`` for papers: 8-9 pt fonts at a 3.3 in column width, thin
  lines, TrueType fonts embedded in PDFs (``pdf.fonttype 42``), no top/right spines, and the Okabe-Ito palette
  (Okabe & Ito 2008, "Color Universal Design"), distinguishable under the common colour-vision deficiencies.
* :func:`new_figure` -- a figure of column (3.3 in) or page (6.8 in) width in that style.
* :func:`line_with_band` -- mean over seeds with a band (± std, or a t-based confidence interval).
* :func:`savefig` -- writes ``name.pdf`` and ``name.png`` and returns both paths.
* :func:`write_csv` / :func:`read_csv` -- tables without pandas.

Everything uses the non-interactive Agg backend objects directly (``matplotlib.figure.Figure``), so no global
pyplot state is touched and figures are garbage-collected normally.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prunebound.errors import DataError, InvalidParameterError

__all__ = [
    "OKABE_ITO",
    "MARKERS",
    "COLUMN_WIDTH",
    "PAGE_WIDTH",
    "paper_rc",
    "paper_style",
    "styled",
    "new_figure",
    "mean_band",
    "line_with_band",
    "savefig",
    "write_csv",
    "read_csv",
]

#: Okabe & Ito (2008) colour-blind-safe palette (black last: it is used for reference lines).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Markers cycled with the colours, so lines stay distinguishable in greyscale.
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
COLUMN_WIDTH = 3.3  # inches, one column of a two-column paper
PAGE_WIDTH = 6.8  # inches, full text width


def paper_rc(*, font_size: float = 8.0) -> dict[str, Any]:
    """The rcParams of the paper style (see module docstring)."""
    from cycler import cycler

    return {
        "font.size": font_size,
        "axes.titlesize": font_size + 1,
        "axes.labelsize": font_size,
        "xtick.labelsize": font_size - 1,
        "ytick.labelsize": font_size - 1,
        "legend.fontsize": font_size - 1,
        "legend.frameon": False,
        "font.family": "sans-serif",
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "none",
        "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.linewidth": 0.6,
        "axes.grid": True,
        "grid.linewidth": 0.4,
        "grid.alpha": 0.35,
        "lines.linewidth": 1.2,
        "lines.markersize": 3.5,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "savefig.bbox": "tight",
        "savefig.pad_inches": 0.02,
        "figure.dpi": 100,
        "savefig.dpi": 200,
    }


@contextlib.contextmanager
def paper_style(*, font_size: float = 8.0) -> Iterator[None]:
    """Context manager applying :func:`paper_rc` (restores the previous rcParams on exit)."""
    import matplotlib

    with matplotlib.rc_context(paper_rc(font_size=font_size)):
        yield


def styled(fn):
    """Decorator: call ``fn`` inside :func:`paper_style`, so every artist it creates (legends, lines, ticks)
    gets the paper rcParams."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with paper_style():
            return fn(*args, **kwargs)

    return wrapper


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = COLUMN_WIDTH, aspect: float = 0.72,
               font_size: float = 8.0, **subplot_kw):
    """A ``(fig, axes)`` pair in the paper style: ``width`` in, height ``width * aspect * nrows/ncols``.

    The rcParams apply while the axes are created, so the figure keeps its fonts and colours when saved
    later.  ``axes`` is a single ``Axes`` for 1x1, else an array.
    """
    from matplotlib.figure import Figure

    if ncols < 1 or nrows < 1:
        raise InvalidParameterError(f"ncols and nrows must be >= 1, got {ncols}, {nrows}")
    height = width * aspect * nrows / ncols
    with paper_style(font_size=font_size):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def mean_band(ys_over_seeds, *, band: str = "std", level: float = 0.95) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """Mean and lower/upper band edges over seeds (rows) for each x (columns); NaNs are ignored per column.

    ``band="std"``: mean ± sample standard deviation (ddof=1; 0 with one seed).  ``band="ci"``: the two-sided
    Student-t confidence interval at ``level``: mean ± t_{(1+level)/2, n-1} · s / sqrt(n) (0 width with one
    seed).  ``band="minmax"``: the range over seeds.
    """
    y = np.asarray(ys_over_seeds, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2 or y.shape[1] == 0:
        raise InvalidParameterError(f"ys_over_seeds must be (n_seeds, n_x), got shape {y.shape}")
    n = np.sum(np.isfinite(y), axis=0)
    if np.any(n == 0):
        raise DataError("ys_over_seeds has a column with no finite value")
    fin = np.isfinite(y)
    m = np.where(fin, y, 0.0).sum(axis=0) / n
    if band == "minmax":
        return m, np.where(fin, y, np.inf).min(axis=0), np.where(fin, y, -np.inf).max(axis=0)
    ss = np.where(fin, (y - m) ** 2, 0.0).sum(axis=0)
    s = np.sqrt(ss / np.maximum(n - 1, 1))
    s = np.where(n > 1, s, 0.0)
    if band == "std":
        w = s
    elif band == "ci":
        if not 0.0 < level < 1.0:
            raise InvalidParameterError(f"level must be in (0, 1), got {level}")
        from scipy.stats import t as student_t

        q = np.where(n > 1, student_t.ppf((1.0 + level) / 2.0, np.maximum(n - 1, 1)), 0.0)
        w = q * s / np.sqrt(n)
    else:
        raise InvalidParameterError(f"band must be 'std', 'ci' or 'minmax', got {band!r}")
    return m, m - w, m + w


def line_with_band(ax, x, ys_over_seeds, label: str | None = None, *, band: str = "std", level: float = 0.95,
                   color: str | None = None, marker: str | None = None, alpha: float = 0.22, **line_kw):
    """Plot the mean over seeds as a line with markers and a shaded band (see :func:`mean_band`).

    ``ys_over_seeds``: array (n_seeds, len(x)) (or 1-D for a single seed).  Colour and marker default to the
    next Okabe-Ito colour / marker for this axes.  Returns the ``Line2D`` of the mean.
    """
    x = np.asarray(x, dtype=np.float64)
    m, lo, hi = mean_band(ys_over_seeds, band=band, level=level)
    if m.shape != x.shape:
        raise InvalidParameterError(f"x has {x.shape[0]} points but ys_over_seeds has {m.shape[0]} columns")
    k = len(ax.get_lines())
    if color is None:
        color = OKABE_ITO[k % len(OKABE_ITO)]
    if marker is None:
        marker = MARKERS[k % len(MARKERS)]
    (line,) = ax.plot(x, m, label=label, color=color, marker=marker, **line_kw)
    if np.any(hi > lo):
        ax.fill_between(x, lo, hi, color=color, alpha=alpha, linewidth=0)
    return line


def savefig(fig, out_dir: str | os.PathLike, name: str, *, formats: Sequence[str] = ("pdf", "png"),
            dpi: int = 200) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.pdf`` (vector) and ``out_dir/name.png`` (``dpi``); return the paths.

    The paper style's rcParams are active while saving (fonts embedded as TrueType in the PDF).  PDFs are
    written without a creation date so reruns give identical bytes.
    """
    if not name or "/" in name or os.sep in name:
        raise InvalidParameterError(f"name must be a plain file stem, got {name!r}")
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    with paper_style():
        for fmt in formats:
            p = d / f"{name}.{fmt}"
            meta: dict[str, Any] = {}
            if fmt == "pdf":
                meta = {"CreationDate": None, "Creator": "prunebound"}
            elif fmt == "png":
                meta = {"Software": "prunebound"}
            fig.savefig(p, format=fmt, dpi=dpi, metadata=meta)
            paths.append(p)
    return paths


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]],
              columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (dicts) to ``path`` as CSV with a header; columns default to keys in first-seen order.

    Floats are written with ``repr`` (round-trip exact), ``None`` as an empty cell.
    """
    if columns is None:
        columns = []
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
    return p


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a CSV written by :func:`write_csv`; numbers become ``int``/``float``, empty cells ``None``."""

    def conv(s: str):
        if s == "":
            return None
        if s in ("true", "false"):
            return s == "true"
        for t in (int, float):
            try:
                return t(s)
            except ValueError:
                pass
        return s

    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return [{k: conv(v) for k, v in row.items()} for row in r]
