"""Reproduce the edge of stability on task=eos: full-batch gradient descent's sharpness rises, then hovers at 2/lr
(Cohen et al., ICLR 2021); full-batch Adam's preconditioned sharpness hovers at 38/lr (Cohen et al., 2022).

    python benchmarks/edge_of_stability.py                               # SGD at 0.02 0.05 0.1 0.15, Adam too
    python benchmarks/edge_of_stability.py --sgd 0.05 0.1 --adam 0.001 --out multirun/eos   # (--adam alone: none)

Each step size is one `optbench task=eos` run (diagnostics every 20 steps, on all 5,000 examples), made by the CLI
as a user makes it; the table reads each run's diagnostics.csv: the mean (preconditioned) sharpness over the last
third of the measured steps divided by the threshold (their figures: close to 1), the first measured step at or
above the threshold, and the run's wall time. Every line names the CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

OPTBENCH = str(Path(sys.executable).with_name("optbench"))
SGD_LRS = [0.02, 0.05, 0.1, 0.15]
ADAM_LRS = [0.0005, 0.001, 0.002]


def settle(run_dir: Path) -> dict[str, float]:
    """What a run's diagnostics.csv says about the edge of stability."""
    rows = pd.read_csv(run_dir / "diagnostics.csv")
    judged = rows.preconditioned_sharpness if rows.preconditioned_sharpness.notna().any() else rows.sharpness
    last_third = rows.iteration > rows.iteration.max() * 2 / 3
    above = rows.iteration[judged >= rows.stability_threshold]
    return {
        "threshold": float(rows.stability_threshold.iloc[-1]),
        "ratio": float((judged[last_third] / rows.stability_threshold[last_third]).mean()),
        "first_crossing": int(above.iloc[0]) if len(above) else None,
        "start": float(judged.iloc[0]),
    }


def main() -> None:
    """Run each step size and print the reproduction table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sgd", nargs="*", type=float, default=SGD_LRS)
    parser.add_argument("--adam", nargs="*", type=float, default=ADAM_LRS)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("multirun/eos"))
    parser.add_argument("overrides", nargs="*", help="more overrides for every run, e.g. threads=1")
    args = parser.parse_args()
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    print(f"CPU: {cpu}; task=eos, {args.iterations} iterations, diagnostics every 20 steps")
    print("| optimizer | lr | threshold | sharpness at step 20 | first step >= threshold | last third / threshold |")
    print("| --- | --- | --- | --- | --- | --- |")
    for optimizer, lrs in (("sgd", args.sgd), ("adam", args.adam)):
        for lr in lrs:
            where = args.out / f"{optimizer}_{lr:g}"
            if not (where / "summary.json").exists() or json.loads((where / "summary.json").read_text())[
                "status"
            ] not in ("completed", "diverged"):
                started = time.perf_counter()
                command = [OPTBENCH, "task=eos", f"optimizer={optimizer}", f"optimizer.lr={lr}"]
                command += [
                    f"iterations={args.iterations}",
                    "progress=false",
                    f"hydra.run.dir={where}",
                    *args.overrides,
                ]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                print(f"<!-- {where}: {time.perf_counter() - started:.0f} s -->", flush=True)
            seen = settle(where)
            status = json.loads((where / "summary.json").read_text())["status"]
            print(
                f"| {optimizer} | {lr:g} | {seen['threshold']:.4g} | {seen['start']:.4g} | {seen['first_crossing']} | "
                f"**{seen['ratio']:.3f}**{'' if status == 'completed' else f' ({status})'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
