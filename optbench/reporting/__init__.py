"""The report (`optbench report`, `optbench.report(...)`): comparison figures, tables and report.html for one
run, a sweep, or many. `build` holds the engine; this file stays empty, so that the sweep's auto-report
callback (`reporting.callback`) loads pandas, matplotlib and scipy only when a sweep ends."""
