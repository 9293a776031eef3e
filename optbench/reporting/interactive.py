"""report.html's interactive figures: each matplotlib figure translated into a Plotly figure spec.

One drawing per figure (the matplotlib one, which the PNGs and summary.md keep): its artists are
read back and re-expressed as Plotly traces, so hover, zoom and legend toggling show the same data.
Lines, bands (fill_between), error bars, points and annotations translate; a figure holding anything
else (an image, contours) returns None and report.html shows its PNG instead.
"""

from __future__ import annotations

import html
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation, Text
from matplotlib.ticker import FixedLocator

log = logging.getLogger(__name__)

MAX_POINTS = 1500  # a longer line is thinned to this many points (every k-th, the last kept): hover stays exact
DIGITS = 6  # significant digits kept in the page (the CSVs hold the full numbers)
DASHES = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot"}
SYMBOLS = {
    "o": "circle",
    "x": "x-thin-open",
    "X": "x",
    "+": "cross-thin-open",
    "*": "star",
    "s": "square",
    "D": "diamond",
    "d": "diamond-tall",
    "^": "triangle-up",
    "v": "triangle-down",
    ".": "circle",
}
SHAPES = {"steps-post": "hv", "steps": "hv", "steps-pre": "vh", "steps-mid": "hvh"}  # axes.step's drawstyles
SPEC_SUFFIX = ".plotly.json"  # beside each figure file: its Plotly spec, read by report.html


def plotly_js() -> str:
    """Plotly's JavaScript bundle, shipped with the plotly package (inlined once per report.html)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _colour(colour: Any, alpha: float | None = None) -> str:
    red, green, blue, own_alpha = to_rgba(colour)
    return f"rgba({round(255 * red)},{round(255 * green)},{round(255 * blue)},{alpha if alpha is not None else own_alpha:.3g})"


def _numbers(values: Any) -> list[float | None]:
    """Floats rounded to DIGITS significant digits; NaN/inf as null (JSON has neither)."""
    return [float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None for v in np.asarray(values, dtype=float).ravel()]


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= MAX_POINTS:
        return x, y
    keep = np.unique(np.r_[np.arange(0, len(x), math.ceil(len(x) / MAX_POINTS)), len(x) - 1])
    return x[keep], y[keep]


def _text(text: str) -> str:
    """Matplotlib text as Plotly text: escaped (Plotly renders a subset of HTML), newlines as <br>."""
    return html.escape(text, quote=False).replace("\n", "<br>")


class _Axes:
    """One matplotlib axes and the Plotly axis pair it becomes."""

    def __init__(self, axes: Any, index: int) -> None:
        self.axes = axes
        self.suffix = "" if index == 0 else str(index + 1)
        self.x_label = axes.get_xlabel()
        self.y_label = axes.get_ylabel()
        box = axes.get_position()
        self.domain_x, self.domain_y = [box.x0, box.x1], [box.y0, box.y1]
        # an error bar's label is its container's, not its line's
        self.labels = {
            id(container.lines[0]): container.get_label()
            for container in axes.containers
            if isinstance(container, ErrorbarContainer) and container.lines[0] is not None
        }
        # colour -> label of the labelled line drawn in it: a band or faint curve toggles with its line
        self.legend = {
            line.get_color(): self.label(line) for line in axes.get_lines() if not self.label(line).startswith("_")
        }

    def in_data(self, artist: Any) -> bool:
        return artist.get_transform().contains_branch(self.axes.transData)

    def axis(self, which: str) -> dict[str, Any]:
        """The layout entry of this axes' x or y axis: title, scale, range, fixed tick labels."""
        axis = self.axes.xaxis if which == "x" else self.axes.yaxis
        scale = self.axes.get_xscale() if which == "x" else self.axes.get_yscale()
        low, high = self.axes.get_xlim() if which == "x" else self.axes.get_ylim()
        log = scale == "log" and low > 0 and high > 0
        entry: dict[str, Any] = {
            "title": {"text": _text(self.x_label if which == "x" else self.y_label)},
            "type": "log" if log else "linear",
            "range": _numbers(np.log10([low, high]) if log else [low, high]),
            "domain": self.domain_x if which == "x" else self.domain_y,
            "showgrid": any(line.get_visible() for line in axis.get_gridlines()),
            "zeroline": False,
            "anchor": ("y" if which == "x" else "x") + self.suffix,
            "automargin": True,
        }
        labels = [t.get_text() for t in axis.get_majorticklabels()]
        if isinstance(axis.get_major_locator(), FixedLocator) and all(labels):  # ticks labelled by hand
            entry["tickvals"] = _numbers(axis.get_majorticklocs())
            entry["ticktext"] = [_text(label) for label in labels]
        return entry

    def hover(self, name: str) -> str:
        """The hover text of a trace: its name and both coordinates, labelled as the axes are."""
        return (
            f"{_text(name)}<br>{_text(self.x_label or 'x')}: %{{x}}<br>{_text(self.y_label or 'y')}: %{{y:.5g}}"
            "<extra></extra>"
        )

    def traces(self) -> list[dict[str, Any]] | None:
        """Every artist of the axes as Plotly traces; None if one cannot be translated."""
        traces: list[dict[str, Any]] = []
        for collection in self.axes.collections:
            if isinstance(collection, LineCollection) and self.in_data(collection):
                traces.append(self._segments(collection))
            # by name: a PolyCollection subclass (pcolor's PolyQuadMesh) colours each polygon by value, a band does not
            elif type(collection).__name__ in ("PolyCollection", "FillBetweenPolyCollection") and self.in_data(
                collection
            ):
                traces += self._bands(collection)
            else:
                return None
        if self.axes.images or self.axes.patches:
            return None
        for line in self.axes.get_lines():
            trace = self._line(line)
            if trace is not None:
                traces.append(trace)
        return traces

    def label(self, line: Line2D) -> str:
        """The legend label of a line (its error-bar container's, for an error bar's line)."""
        return self.labels.get(id(line), line.get_label())

    def _common(self, colour: Any) -> dict[str, Any]:
        group = next((label for key, label in self.legend.items() if to_rgba(key)[:3] == to_rgba(colour)[:3]), None)
        return {
            "xaxis": "x" + self.suffix,
            "yaxis": "y" + self.suffix,
            **({"legendgroup": _text(group)} if group else {}),
        }

    def _line(self, line: Line2D) -> dict[str, Any] | None:
        marker = line.get_marker()
        if marker in ("_", "|"):  # an error bar's caps: the bar itself is drawn
            return None
        x, y = np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)
        if line.get_transform() == self.axes.get_yaxis_transform():  # axhline: x spans the axes
            x = np.asarray(self.axes.get_xlim(), dtype=float)
        elif not self.in_data(line):
            return None
        x, y = _thin(x, y)
        label = self.label(line)
        shown = not label.startswith("_")
        name = label if shown else self.legend.get(line.get_color(), "")  # an unlabelled line: its group's
        style = line.get_linestyle()
        has_line = style not in ("None", "none", "", " ")
        has_marker = marker not in (None, "None", "none", "", " ") and line.get_markersize() > 0
        alpha = line.get_alpha()
        trace = {
            "type": "scatter",
            "x": _numbers(x),
            "y": _numbers(y),
            **self._common(line.get_color()),
            "mode": "+".join(m for m, on in (("lines", has_line), ("markers", has_marker)) if on) or "none",
            "name": _text(name),
            "showlegend": shown,
            "hovertemplate": self.hover(name),
        }
        if has_line:
            trace["line"] = {
                "color": _colour(line.get_color(), alpha),
                "width": line.get_linewidth(),
                "dash": DASHES.get(style, "solid"),
                "shape": SHAPES.get(line.get_drawstyle(), "linear"),
            }
        if has_marker:
            trace["marker"] = {
                "color": _colour(line.get_markerfacecolor(), alpha),
                "size": line.get_markersize() + 2,
                "symbol": SYMBOLS.get(marker, "circle"),
                "line": {"color": _colour(line.get_markeredgecolor(), alpha), "width": 1},
            }
        return trace

    def _segments(self, collection: LineCollection) -> dict[str, Any]:
        """Error bars: every segment in one trace, separated by gaps."""
        xs: list[float | None] = []
        ys: list[float | None] = []
        for segment in collection.get_segments():
            xs += [*_numbers(segment[:, 0]), None]
            ys += [*_numbers(segment[:, 1]), None]
        colour = collection.get_colors()[0] if len(collection.get_colors()) else "black"
        return {
            "type": "scatter",
            "x": xs,
            "y": ys,
            "mode": "lines",
            "showlegend": False,
            "hoverinfo": "skip",
            "line": {"color": _colour(colour), "width": float(np.ravel(collection.get_linewidths())[0])},
            **self._common(colour),
        }

    def _bands(self, collection: PolyCollection) -> list[dict[str, Any]]:
        """A fill_between band: each polygon filled, no hover (the line it surrounds has it)."""
        colour = collection.get_facecolors()[0]
        traces = []
        for path in collection.get_paths():
            x, y = _thin(path.vertices[:, 0], path.vertices[:, 1])
            traces.append(
                {
                    "type": "scatter",
                    "x": _numbers(x),
                    "y": _numbers(y),
                    "fill": "toself",
                    "mode": "none",
                    "fillcolor": _colour(colour),
                    "showlegend": False,
                    "hoverinfo": "skip",
                    **self._common(colour),
                }
            )
        return traces

    def annotations(self) -> list[dict[str, Any]] | None:
        """The axes' texts (annotations at data points, e.g. a mean's interval); None if one is placed otherwise."""
        notes = []
        for text in self.axes.texts:
            if isinstance(text, Annotation) and text.xycoords == "data":
                x, y = text.xy
                shift = text.xyann[1] if text.anncoords == "offset points" else 0
            elif isinstance(text, Text) and self.in_data(text):
                (x, y), shift = text.get_position(), 0
            else:
                return None
            notes.append(
                {
                    "x": _numbers([x])[0],
                    "y": _numbers([y])[0],
                    "text": _text(text.get_text()),
                    "showarrow": False,
                    "yshift": shift,
                    "font": {"size": 11},
                    "xref": "x" + self.suffix,
                    "yref": "y" + self.suffix,
                }
            )
        return notes


def to_plotly(figure: Figure, drawn: bool = False) -> dict[str, Any] | None:
    """The figure as a Plotly spec {"data": [...], "layout": {...}}, or None when it holds what does not translate.

    It reads the final limits and layout positions of a drawn figure: `drawn=True` when it was just
    saved (savefig drew it), else it is drawn here."""
    if not drawn:
        figure.canvas.draw()
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {
        "annotations": [],
        "hovermode": "closest",
        "template": "plotly_white",
        "legend": {"font": {"size": 11}},
        "margin": {"t": 80, "r": 20},
        "height": max(360, round(figure.get_figheight() * 80)),
    }
    titles = [t.get_text() for t in ([figure._suptitle] if figure._suptitle else [])]
    for index, axes in enumerate(figure.axes):
        if axes.get_label() == "<colorbar>":
            return None
        part = _Axes(axes, index)
        traces, notes = part.traces(), part.annotations()
        if traces is None or notes is None:
            return None
        data += traces
        layout["annotations"] += notes
        layout["xaxis" + part.suffix] = part.axis("x")
        layout["yaxis" + part.suffix] = part.axis("y")
        if axes.get_title():
            if len(figure.axes) == 1:
                titles.append(axes.get_title())
            else:
                layout["annotations"].append(
                    {
                        "text": _text(axes.get_title()),
                        "showarrow": False,
                        "xref": "paper",
                        "yref": "paper",
                        "x": sum(part.domain_x) / 2,
                        "y": part.domain_y[1],
                        "yanchor": "bottom",
                        "font": {"size": 12},
                    }
                )
    layout["title"] = {"text": "<br>".join(_text(t) for t in titles), "font": {"size": 14}}
    return {"data": data, "layout": layout}


def _plain(value: Any) -> Any:
    """JSON for the numpy scalars and arrays matplotlib hands back (a marker size, a colour)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def write_spec(figure: Figure, image: Path) -> Path | None:
    """Write the Plotly spec of a figure just saved to `image` beside it (`<name>.plotly.json`); None if it does
    not translate (report.html then shows the image, and a spec left by an earlier report into the same folder
    is removed)."""
    path = image.with_name(image.stem + SPEC_SUFFIX)
    try:
        spec = to_plotly(figure, drawn=True)  # savefig drew it: the layout the PNG shows
        text = json.dumps(spec, separators=(",", ":"), allow_nan=False, default=_plain) if spec else None
    except (TypeError, ValueError) as exc:  # an artist this translation does not know how to read
        log.warning(
            "%s: no interactive version (%s: %s); report.html shows the image", image.name, type(exc).__name__, exc
        )
        text = None
    if text is None:
        path.unlink(missing_ok=True)
        return None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
