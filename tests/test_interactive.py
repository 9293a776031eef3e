"""The matplotlib -> Plotly translation behind report.html's interactive figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from optbench.reporting.interactive import MAX_POINTS, to_plotly, write_spec


def figure() -> tuple[Figure, object]:
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def test_lines_bands_error_bars_and_log_axes_translate_with_their_labels():
    fig, axes = figure()
    x = np.arange(1, 5001)
    axes.plot(x, 1 / x, color="tab:blue", alpha=0.2)  # a faint raw curve, no label
    axes.plot(x, 2 / x, color="tab:blue", linestyle="--", label="adam <b>")  # its labelled curve
    axes.fill_between(x, 1 / x, 3 / x, color="tab:blue", alpha=0.2)
    axes.errorbar([10, 20], [0.5, 0.4], yerr=[0.1, 0.1], color="tab:orange", marker="o", label="sgd")
    axes.axhline(0.3, color="0.3", linestyle=":", label="target")
    axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_title("Training loss")
    spec = to_plotly(fig)
    traces = spec["data"]
    named = {t["name"]: t for t in traces if t.get("showlegend")}
    assert set(named) == {"adam &lt;b&gt;", "sgd", "target"}  # labels escaped: Plotly renders some HTML
    assert named["adam &lt;b&gt;"]["line"]["dash"] == "dash" and named["sgd"]["mode"] == "lines+markers"
    raw = next(t for t in traces if not t.get("showlegend") and t.get("mode") == "lines" and "hoverinfo" not in t)
    assert raw["legendgroup"] == "adam &lt;b&gt;" and raw["line"]["color"].endswith(",0.2)")  # toggles with its curve
    assert len(raw["x"]) <= MAX_POINTS + 1 and raw["x"][-1] == 5000  # thinned, the last point kept
    assert raw["x"][:2] == [1, 5] and raw["y"][1] == pytest.approx(1 / 5, rel=1e-5)  # every 4th point, its own value
    assert any(t.get("fill") == "toself" for t in traces)  # the band
    assert named["target"]["x"] == pytest.approx(list(axes.get_xlim()), rel=1e-5)  # axhline spans the axes
    layout = spec["layout"]
    assert layout["yaxis"]["type"] == "log" and layout["yaxis"]["range"] == pytest.approx(
        np.log10(axes.get_ylim()), abs=1e-4
    )
    assert layout["title"]["text"] == "Training loss" and layout["xaxis"]["title"]["text"] == "iteration"


def test_categorical_ticks_and_annotations_translate():
    fig, axes = figure()
    axes.plot([97.5], [0], "o")
    axes.annotate("97.50 [97.4, 97.6]", (97.5, 0), xytext=(0, 8), textcoords="offset points")
    axes.set_yticks([0], ["adam"])
    spec = to_plotly(fig)
    assert spec["layout"]["yaxis"]["ticktext"] == ["adam"] and spec["layout"]["yaxis"]["tickvals"] == [0]
    assert spec["layout"]["annotations"][0] == {
        "x": 97.5,
        "y": 0,
        "text": "97.50 [97.4, 97.6]",
        "showarrow": False,
        "yshift": 8,
        "font": {"size": 11},
        "xref": "x",
        "yref": "y",
    }


def test_images_and_contours_do_not_translate():
    fig, axes = figure()
    axes.imshow(np.eye(3))
    assert to_plotly(fig) is None
    fig, axes = figure()
    axes.contour(np.arange(5), np.arange(5), np.add.outer(np.arange(5), np.arange(5)))
    assert to_plotly(fig) is None


def test_subplots_keep_their_places_titles_and_step_lines():
    fig = Figure(figsize=(12, 4))
    FigureCanvasAgg(fig)
    fig.suptitle("sgd vs scratch/sgd")
    left, right = fig.subplots(1, 2)
    left.plot([1, 2, 3], [3, 2, 1], label="sgd")
    left.set_title("training loss")
    right.step([1, 2, 3], [0.1, 0.5, 0.9], where="post", label="sgd")
    right.set_title("profile")
    spec = to_plotly(fig)
    layout = spec["layout"]
    assert layout["xaxis"]["domain"][1] < layout["xaxis2"]["domain"][0]  # side by side, as in the PNG
    assert [t["xaxis"] for t in spec["data"]] == ["x", "x2"] and spec["data"][1]["line"]["shape"] == "hv"
    assert {a["text"] for a in layout["annotations"]} == {"training loss", "profile"}
    assert layout["title"]["text"] == "sgd vs scratch/sgd"


def test_a_figure_that_does_not_translate_leaves_no_spec_behind(tmp_path):
    fig, axes = figure()
    axes.plot([1, 2], [np.float32(1), np.float32(2)], markersize=np.float32(4), marker="o")  # numpy scalars: JSON
    image = tmp_path / "figure.png"
    spec = write_spec(fig, image)
    assert spec == tmp_path / "figure.plotly.json" and json.loads(spec.read_text())["data"][0]["marker"]["size"] == 6
    fig, axes = figure()
    axes.imshow(np.eye(2))  # the same name, now a figure that does not translate: the old spec goes
    assert write_spec(fig, image) is None and not spec.exists()
