"""Paper-style figures: vector PDF + PNG, readable at one-column width, colour-blind-safe colours.

* :func:`paper_style` -- a ``matplotlib.rc_context`` for papers: 8-9 pt fonts at a 3.3 in column width, thin
  lines, TrueType fonts embedded in PDFs (``pdf.fonttype 42``), no top/right spines, and the Okabe-Ito palette
  (Okabe & Ito 2008, "Color Universal Design"), distinguishable under the common colour-vision deficiencies.
* :func:`new_figure` -- a figure of column (3.3 in) or page (6.8 in) width in that style.
* :func:`line_with_band` -- mean over seeds with a band (± standard error, ± std, or a t-based confidence
  interval).
* :func:`add_caption` -- the caption (model, data, n, δ, seeds, bands, protocol) as a footnote under the axes.
* :func:`legend_overlaps` / :func:`fix_legends` -- which legend boxes cover a plotted point (display
  coordinates, from the artists), and moving those legends outside their axes.
* :func:`mark_paper` -- a published number as a black star labelled "paper".
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
    "CAPTION_GID",
    "add_caption",
    "legend_overlaps",
    "fix_legends",
    "mark_paper",
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

    ``band="std"``: mean ± sample standard deviation (ddof=1; 0 with one seed).  ``band="se"``: mean ± standard
    error ``s / sqrt(n)`` (0 with one seed).  ``band="ci"``: the two-sided
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
    elif band == "se":
        w = s / np.sqrt(n)
    elif band == "ci":
        if not 0.0 < level < 1.0:
            raise InvalidParameterError(f"level must be in (0, 1), got {level}")
        from scipy.stats import t as student_t

        q = np.where(n > 1, student_t.ppf((1.0 + level) / 2.0, np.maximum(n - 1, 1)), 0.0)
        w = q * s / np.sqrt(n)
    else:
        raise InvalidParameterError(f"band must be 'std', 'se', 'ci' or 'minmax', got {band!r}")
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


CAPTION_GID = "prunebound-caption"


def add_caption(fig, text: str, *, font_size: float = 6.5):
    """Put ``text`` under the figure as a left-aligned footnote (wrapped to the figure width; saved PNG/PDF
    include it through the tight bounding box), replacing an earlier caption.  Returns the ``Text``; its
    ``gid`` is :data:`CAPTION_GID`."""
    import textwrap

    for t in list(fig.texts):
        if t.get_gid() == CAPTION_GID:
            t.remove()
    width_pt = fig.get_size_inches()[0] * 72.0
    chars = max(40, int(width_pt / (0.52 * font_size)))
    wrapped = "\n".join(textwrap.wrap(text, chars))
    return fig.text(0.005, -0.01, wrapped, ha="left", va="top", fontsize=font_size, gid=CAPTION_GID,
                    transform=fig.transFigure)


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _plotted_points(ax) -> list[tuple[str, np.ndarray]]:
    """(artist label, display-coordinate points) of every visible line vertex, scatter point and bar top of
    ``ax`` that lies inside the axes box."""
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle

    out = []
    for ln in ax.get_lines():
        if ln.get_visible() and len(ln.get_xydata()):
            out.append((ln.get_label(), ln.get_transform().transform(np.asarray(ln.get_xydata(), float))))
    for c in ax.collections:
        if isinstance(c, PathCollection) and c.get_visible() and len(c.get_offsets()):
            out.append((c.get_label(), c.get_offset_transform().transform(np.asarray(c.get_offsets(), float))))
    for p in ax.patches:
        if isinstance(p, Rectangle) and p.get_visible() and p.get_height() != 0:
            x0, y0, w, h = p.get_x(), p.get_y(), p.get_width(), p.get_height()
            top = np.array([[x0 + w / 2, y0 + h], [x0, y0 + h], [x0 + w, y0 + h]])
            out.append(("bar", p.get_data_transform().transform(top)))
    box = ax.get_window_extent()
    res = []
    for label, xy in out:
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        inside = ((xy[:, 0] >= box.x0 - 0.5) & (xy[:, 0] <= box.x1 + 0.5) & (xy[:, 1] >= box.y0 - 0.5)
                  & (xy[:, 1] <= box.y1 + 0.5))
        if inside.any():
            res.append((str(label), xy[inside]))
    return res


def legend_overlaps(fig) -> list[str]:
    """Every (legend, plotted point) pair where the point lies inside the legend's box, in display
    coordinates after a full draw; one string each, empty when no legend covers data.

    Points are the vertices (markers) of every line, the centres of scatter points and the tops of bars of
    every axes of ``fig`` -- a legend outside its axes is checked against the neighbouring panels too."""
    r = _renderer(fig)
    legends = [lg for lg in [ax.get_legend() for ax in fig.axes] if lg is not None] + list(fig.legends)
    pts = [(ax, lab, xy) for ax in fig.axes if ax.get_visible() for lab, xy in _plotted_points(ax)]
    found = []
    for lg in legends:
        bb = lg.get_window_extent(r)
        for ax, lab, xy in pts:
            hit = (xy[:, 0] > bb.x0) & (xy[:, 0] < bb.x1) & (xy[:, 1] > bb.y0) & (xy[:, 1] < bb.y1)
            if hit.any():
                title = ax.get_title() or "axes"
                found.append(f"legend of {lg.axes.get_title() if lg.axes else 'figure'!r} covers "
                             f"{int(hit.sum())} point(s) of {lab!r} in {title!r}")
    return found


def fix_legends(fig) -> list[str]:
    """Move every axes legend that covers a plotted point (:func:`legend_overlaps`) to outside the right
    edge of its axes (the constrained layout makes room); returns the overlaps that remain (ideally none)."""
    for ax in fig.axes:
        lg = ax.get_legend()
        if lg is None:
            continue
        r = _renderer(fig)
        bb = lg.get_window_extent(r)
        covered = any(((xy[:, 0] > bb.x0) & (xy[:, 0] < bb.x1) & (xy[:, 1] > bb.y0) & (xy[:, 1] < bb.y1)).any()
                      for a in fig.axes for _, xy in _plotted_points(a))
        if covered:
            handles, labels = lg.legend_handles, [t.get_text() for t in lg.get_texts()]
            kw = {"ncol": getattr(lg, "_ncols", 1), "fontsize": lg.get_texts()[0].get_fontsize() if labels else None}
            lg.remove()
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)
    return legend_overlaps(fig)


def mark_paper(ax, x, y, *, label: str = "paper", size: float = 9.0, **kw):
    """Mark published numbers at ``(x, y)`` with black stars labelled ``label`` (one legend entry)."""
    (ln,) = ax.plot(np.atleast_1d(x), np.atleast_1d(y), linestyle="none", marker="*", markersize=size,
                    color=kw.pop("color", "black"), label=label, zorder=5, **kw)
    return ln


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
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return repr(v) if math.isfinite(v) else str(v)
    if isinstance(v, np.integer):
        return str(int(v))
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
