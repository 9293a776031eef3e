"""report.html: the report's Document as one self-contained page.

No network: figures are Plotly charts (Plotly's bundle inlined once) or images inlined as data URIs,
and the small sorting script is inline. Every label,
path and config value is escaped, because run dirs are untrusted input and reports get shared.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from optbench.reporting.document import Document, Section
from optbench.reporting.groups import Group
from optbench.reporting.interactive import SPEC_SUFFIX, plotly_js

MEDIA_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".gif": "image/gif"}

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1400px;
       padding: 0 1.5rem; color: #1b1b1b; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
.sources { color: #555; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.55rem; text-align: left; vertical-align: top; white-space: nowrap; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 0 1.5rem; }
th { background: #f3f4f6; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1.5rem 0; } .plot { width: 100%; min-height: 360px; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: 12px; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 12px; }
code { background: #f3f4f6; padding: 0 0.2rem; } details { margin: 0.4rem 0; }
.troubled li { margin: 0.3rem 0; }
"""

# Sortable tables (click or Enter on a header; numbers before text, "∞" last), a #sort=N (or
# #sort=-N, descending) link sorts the first table, and data-ready / data-errors on <html> let a
# headless browser check the page ran.
SCRIPT = """
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (event) {
    errors.push(String(event.message));
    document.documentElement.setAttribute("data-errors", errors.join(" | "));
  });
  function key(cell) {
    var text = cell.textContent.trim();
    if (text.charAt(0) === "\\u221e") { return Infinity; }
    var number = parseFloat(text.replace(/,/g, ""));
    return isNaN(number) ? text.toLowerCase() : number;
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === "number" ? -1 : 1;
  }
  function sortBy(table, column, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (first, second) {
      var order = compare(key(first.cells[column]), key(second.cells[column]));
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      header.setAttribute("aria-sort", index === column ? (descending ? "descending" : "ascending") : "none");
    });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      function toggle() { sortBy(table, index, header.getAttribute("aria-sort") === "ascending"); }
      header.addEventListener("click", toggle);
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); }
      });
    });
  });
  var wanted = /^#sort=(-?)(\\d+)$/.exec(window.location.hash);
  var first = document.querySelector("table.sortable");
  if (wanted && first && Number(wanted[2]) < first.tHead.rows[0].cells.length) {
    sortBy(first, Number(wanted[2]), wanted[1] === "-");
  }
  var plots = [];
  document.querySelectorAll("div.plot").forEach(function (div) {
    var spec = JSON.parse(div.nextElementSibling.textContent);
    plots.push(Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true}));
  });
  Promise.all(plots).then(function () {
    document.documentElement.setAttribute("data-ready", "yes");
  }, function (error) {
    errors.push(String(error));
    document.documentElement.setAttribute("data-errors", errors.join(" | "));
  });
})();
"""


def inline(text: str) -> str:
    """`text` escaped, with its `code` and **bold** spans rendered."""
    escaped = html.escape(str(text), quote=True)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)


def notes_html(lines: list[str]) -> str:
    """Paragraphs, with runs of "- " lines as bulleted lists."""
    parts, bullets = [], []
    for line in [*lines, ""]:
        if line.startswith("- "):
            bullets.append(f"<li>{inline(line[2:])}</li>")
            continue
        if bullets:
            parts.append("<ul>" + "".join(bullets) + "</ul>")
            bullets = []
        if line:
            parts.append(f"<p>{inline(line)}</p>")
    return "\n".join(parts)


def table_html(frame: pd.DataFrame) -> str:
    """A sortable table of the frame's text cells."""
    head = "".join(f'<th scope="col" tabindex="0" aria-sort="none">{html.escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return (
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def figure_html(path: Path, root: Path) -> str:
    """The figure as an interactive Plotly chart where it has a spec (`interactive`), else its image
    inlined as a data URI (PDFs, which browsers cannot inline, are linked by name)."""
    name = html.escape(path.relative_to(root).as_posix())
    spec = path.with_name(path.stem + SPEC_SUFFIX)
    if spec.exists():
        # JSON in a non-executed script element, with no "<" at all (\u003c in JSON strings): nothing in
        # it can close the element or open a comment, whatever a label holds
        data = spec.read_text().replace("<", "\\u003c")
        return (
            f'<figure><div class="plot" role="img" aria-label="{html.escape(path.stem)}"></div>'
            f'<script type="application/json" class="plot-spec">{data}</script>'
            f"<figcaption>{name} (interactive: hover for values, drag to zoom, double-click to reset, "
            "click a legend entry to hide it)</figcaption></figure>"
        )
    return image_html(path, root)


def image_html(path: Path, root: Path) -> str:
    """The figure's image inlined as a data URI (PDFs, which browsers cannot inline, are linked by name)."""
    name = html.escape(path.relative_to(root).as_posix())
    media_type = MEDIA_TYPES.get(path.suffix)
    if media_type is None:
        return (
            f"<p>Figure <code>{name}</code> (open the file: {html.escape(path.suffix)} figures are not inlined; "
            "use --format png or svg for a page with figures).</p>"
        )
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:{media_type};base64,{data}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def configs_html(groups: list[Group]) -> str:
    """Each group's composed config (its first run's .hydra/config.yaml) and run dirs, folded."""
    parts = []
    for group in groups:
        run = group.runs[0]
        config = OmegaConf.to_yaml(run.config) if len(run.config) else "(no .hydra/config.yaml)"
        dirs = "\n".join(str(r.path) for r in group.runs)
        parts.append(
            f"<details><summary>{html.escape(group.label)} · {len(group.runs)} runs</summary>"
            f"<pre>{html.escape(config)}</pre><p>Run dirs:</p><pre>{html.escape(dirs)}</pre></details>"
        )
    return "<h3>Configs</h3>\n" + "\n".join(parts) if parts else ""


def section_html(section: Section, root: Path) -> str:
    """One section: title, intro, table, notes, figures and configs."""
    return "\n".join(
        part
        for part in (
            f"<h2>{html.escape(section.title)}</h2>" if section.title else "",
            f"<p>{inline(section.intro)}</p>",
            table_html(section.table),
            notes_html(section.notes),
            '<div class="figures">' + "\n".join(figure_html(path, root) for path in section.figures) + "</div>"
            if section.figures
            else "",
            configs_html(section.groups),
        )
        if part
    )


def render_html(document: Document, sources: list[str]) -> str:
    """The whole report as one HTML page."""
    troubled = (
        (
            '<h2>Runs that did not complete cleanly</h2>\n<div class="troubled">'
            + notes_html(document.troubled)
            + "</div>"
        )
        if document.troubled
        else ""
    )
    body = "\n".join(section_html(section, document.root) for section in document.sections)
    listed = ", ".join(f"<code>{html.escape(source)}</code>" for source in sources)
    # Plotly's bundle, inlined once (the page stays one file that needs no network), only when a figure uses it
    plotly = f"<script>{plotly_js()}</script>\n" if 'class="plot"' in body else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>optbench report</title>
<style>{STYLE}</style>
</head>
<body>
<h1>optbench report</h1>
<p class="sources">Runs from {listed}. Click a column header to sort.</p>
{body}
{troubled}
{plotly}<script>{SCRIPT}</script>
</body>
</html>
"""
