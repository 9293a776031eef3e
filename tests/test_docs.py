"""The docs site builds with `mkdocs build --strict` (no broken link or anchor), and the README's links resolve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of `config` into `site`."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_docs_site_builds_strict_with_every_page_in_the_nav(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    done = build(REPO / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    pages = sorted(p.stem for p in (REPO / "docs").glob("*.md"))
    nav = (REPO / "mkdocs.yml").read_text()
    assert [page for page in pages if f"{page}.md" not in nav] == []  # every page is reachable
    for page in pages:
        built = tmp_path / "site" / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.exists(), page
    assert (tmp_path / "site" / "examples" / "quickstart.ipynb").exists()


def test_a_broken_link_fails_the_strict_build(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "outputs.md", "a") as page:
        page.write("\nSee [the tasks](tasks.md#no-such-section).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "no-such-section" in done.stderr


def test_readme_links_resolve():
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links and [link for link in links if not link.startswith("http") and not (REPO / link).exists()] == []


def test_the_summary_fields_table_is_the_schemas():
    """docs/outputs.md lists summary.json's fields as optbench/rundir/summary.py defines them, in order."""
    from optbench.rundir.summary import markdown_table

    assert markdown_table() in (REPO / "docs" / "outputs.md").read_text(), (
        "docs/outputs.md's table of summary.json fields is out of date: paste `python -m optbench.rundir.summary`"
    )


def test_a_run_writes_only_schema_fields_in_the_schemas_order(tmp_path):
    from conftest import run

    from optbench.rundir.summary import FIELDS, Summary

    summary = run(tmp_path, "task=rosenbrock", "optimizer=adam", "iterations=5", "eval_every=5")
    order = list(FIELDS)
    assert [order.index(key) for key in summary] == sorted(order.index(key) for key in summary)
    with pytest.raises(AttributeError, match="no field 'final_tset_loss'"):
        Summary().update(final_tset_loss=1.0)
