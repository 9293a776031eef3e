"""report.html: self-contained, escaped, and working in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_report import make_run

from optbench.reporting.build import build_report

HOSTILE = '<img src=x onerror="alert(1)">'
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason="no headless browser: install Debian's chromium "
    "(apt-get install chromium; .ci/run does) to test report.html in one",
)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Path:
    """A report over hand-made runs, one of them with markup in its optimizer name and config."""
    runs = tmp_path_factory.mktemp("runs")
    make_run(runs / "a0", "adam", 0, [0.8, 0.4, 0.3])
    make_run(runs / "a1", "adam", 1, [0.7, 0.5, 0.35])
    make_run(runs / "s0", "sgd", 0, [0.9, 0.7, 0.6])
    make_run(runs / "s1", "sgd", 1, [0.9, 0.8, 0.7])
    hostile = make_run(runs / "h0", HOSTILE, 0, [0.5, 0.45, 0.45])
    config = yaml.safe_load((hostile / ".hydra" / "config.yaml").read_text())
    config["note"] = "</pre><script>alert(2)</script>"
    (hostile / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (runs / "broken").mkdir()
    (runs / "broken" / "train.csv").write_text("iteration,loss,accuracy,lr\n1,0.5,,0.1\n")  # no summary: troubled
    out = runs / "report"
    build_report([runs], out)
    return out


def test_page_is_self_contained_and_escapes_every_label(hostile_report):
    page = (hostile_report / "report.html").read_text()
    specs = sorted(hostile_report.rglob("*.plotly.json"))
    # executable scripts: Plotly's bundle and the page's own; each figure's data is inert JSON
    assert len(re.findall(r"<script>", page)) == 2 and "alert(2)</script>" not in page
    assert page.count('<script type="application/json" class="plot-spec">') == len(specs) >= 2
    assert HOSTILE not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert not re.search(r'(src|href)="(?!data:)', markup)  # nothing fetched: every image is a data URI
    pngs = sorted(hostile_report.rglob("*.png"))
    static = [png for png in pngs if not png.with_name(png.stem + ".plotly.json").exists()]
    assert markup.count('src="data:image/png;base64,') == len(static) and len(pngs) == len(static) + len(specs)
    data = [json.loads(m) for m in re.findall(r'class="plot-spec">(.*?)</script>', page)]
    names = [trace.get("name", "") for spec in data for trace in spec["data"]]
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" not in names and any("&lt;img src=x" in n for n in names)
    assert "<" not in "".join(re.findall(r'class="plot-spec">(.*?)</script>', page))  # \u003c: nothing can close it
    assert "Runs that did not complete cleanly" in page and "broken" in page
    assert page.count("<details>") == 4  # each group's config: adam, sgd, the hostile one, the broken run


def browse(page: Path, tmp_path: Path, fragment: str = "") -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and every console message chromium logged."""
    result = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            "--virtual-time-budget=10000",  # timers and promises (Plotly's drawing) settle before the dump
            page.resolve().as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


@needs_browser
def test_the_console_check_catches_a_broken_page(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>notDefined()</script></body></html>")
    dom, console = browse(broken, tmp_path)
    assert any("Uncaught ReferenceError" in line for line in console) and 'data-ready="yes"' not in dom


# The page's three checks in the browser share one load of it: the report, with the test's hover probe added
# (the test's code, not the page's) and sorted by the final test loss through the URL fragment.
HOVER_PROBE = """<script>
window.addEventListener("load", function probe() {
  if (document.documentElement.getAttribute("data-ready") !== "yes") { setTimeout(probe, 50); return; }
  var found = [];
  document.querySelectorAll("div.plot").forEach(function (div) {
    var curve = div.data.findIndex(function (t) { return t.hoverinfo !== "skip" && t.x && t.x.length > 1; });
    Plotly.Fx.hover(div, [{curveNumber: curve, pointNumber: 1}]);
    var label = div.querySelector(".hoverlayer .hovertext");
    found.push({name: div.getAttribute("aria-label"), curve: curve, svg: div.querySelectorAll("svg.main-svg").length,
                traces: div.querySelectorAll(".scatterlayer .trace").length, expected: div.data.length, hover: label ? label.textContent : ""});
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def in_browser(hostile_report, tmp_path_factory) -> tuple[str, list[str]]:
    """The probed report's DOM after its scripts ran (sorted by `#sort=-<final test loss>`), and its console."""
    page = (hostile_report / "report.html").read_text()
    folder = tmp_path_factory.mktemp("browser")
    probed = folder / "probed.html"  # anywhere: the page fetches nothing
    probed.write_text(page.replace("</body>", HOVER_PROBE + "</body>"))
    return browse(probed, folder, f"#sort=-{final_test_loss_column(page)}")


def final_test_loss_column(page: str) -> int:
    headers = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', page.split("</table>")[0])
    return headers.index("final test loss")


@needs_browser
def test_report_loads_in_a_browser_without_errors_and_shows_every_group(in_browser):
    dom, console = in_browser
    assert console == []
    assert re.search(r'<html[^>]*data-ready="yes"', dom) and not re.search(r"<html[^>]*data-errors", dom)
    cells = re.findall(r"<tr><td>([^<]*)</td>", dom)
    assert {"adam", "sgd", '&lt;img src=x onerror="alert(1)"&gt;'} <= set(cells)
    assert '<img src="x"' not in dom and "alert(2)" in dom and "<script>alert(2)" not in dom


@needs_browser
def test_sorting_in_the_browser(in_browser):
    # final test losses: adam 0.325, hostile 0.45, sgd 0.65; descending puts sgd first
    dom, _ = in_browser
    first_table = dom.split("</table>")[0]
    order = re.findall(r"<tr><td>([^<]*)</td>", first_table)
    assert order[0] == "sgd" and order[-1] == "adam" and len(order) == 3
    assert re.search(r'aria-sort="descending">final test loss', first_table)


@needs_browser
def test_every_figure_is_drawn_with_hover_values(hostile_report, in_browser):
    dom, _ = in_browser
    found = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom).group(1)))
    specs = sorted(p.name.removesuffix(".plotly.json") for p in hostile_report.rglob("*.plotly.json"))
    assert sorted(f["name"] for f in found) == specs
    toy = [figure for figure in found if figure["curve"] >= 0]  # the broken run's panel has no curve to hover
    assert {f["name"] for f in toy} == {"train_loss", "test_loss"}
    for figure in found:
        assert figure["svg"] >= 1 and figure["traces"] == figure["expected"], figure
    for figure in toy:
        assert figure["traces"] >= 6, figure  # three groups: curve and raw curve or error bars each
        assert re.search(
            r"^(adam \(n=2\)|sgd \(n=2\)|<img src=x onerror=\"alert\(1\)\">)iteration: \d+", figure["hover"]
        ), figure
    train_loss = next(f for f in toy if f["name"] == "train_loss")
    assert re.search(r"iteration: 2minibatch loss \(log scale\): \d", train_loss["hover"]), train_loss
