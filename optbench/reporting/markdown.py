"""summary.md: the report's Document as GitHub-flavoured markdown (figures linked, not inlined)."""

from __future__ import annotations

from tabulate import tabulate

from optbench.reporting.document import Document


def render_markdown(document: Document) -> str:
    """The whole report as markdown."""
    parts = ["# optbench report\n"]
    for section in document.sections:
        if section.title:
            parts.append(f"## {section.title}\n")
        table = tabulate(section.table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
        parts.append(f"{section.intro}\n\n{table}\n")
        if section.notes:
            parts.append(_notes(section.notes))
        if section.figures:
            parts.append(
                "\n".join(f"![{path.stem}]({path.relative_to(document.root).as_posix()})" for path in section.figures)
                + "\n"
            )
    if document.troubled:
        parts.append("## Runs that did not complete cleanly\n\n" + "\n".join(document.troubled) + "\n")
    return "\n".join(parts)


def _notes(lines: list[str]) -> str:
    """The notes, with a blank line wherever a bulleted list starts or ends (else markdown merges them)."""
    text = []
    for previous, line in zip([None, *lines], lines):
        if previous is not None and previous.startswith("- ") != line.startswith("- "):
            text.append("")
        text.append(line)
    return "\n".join(text) + "\n"
