"""Run every benchmark side by side and write ``benchmarks/results.md`` and a plot.

Each benchmark script runs in its own process (so that peak memory figures are its
own) and leaves a JSON file in ``benchmarks/output/``; this script then gathers them
into one Markdown report and a scaling plot (``benchmarks/scaling.png``):

* ``bench_mle.py``: BG/NBD and Gamma-Gamma fit and prediction time vs lifetimes, and
  both optima, on CDNOW and on simulated customers;
* ``bench_bayesian.py``: pooled BG/NBD NUTS on CDNOW vs pymc-marketing, and the
  hierarchical model on a million customers;
* ``bench_clv.py``: CLV with 1000 draws, time and peak memory, vs pymc-marketing;
* ``bench_summary.py``: the customer summary from Parquet, DuckDB vs pandas.

``--quick`` runs small sizes only (minutes instead of the better part of an hour).

Usage::

    python benchmarks/run.py            # what `make bench` runs
    python benchmarks/run.py --quick
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "output"

FULL = {
    "bench_mle": ["--sizes", "100000", "1000000", "10000000", "--repeats", "5"],
    "bench_bayesian": [],
    "bench_clv": ["--sizes", "10000", "100000", "1000000", "--draws", "1000"],
    "bench_summary": ["--sizes", "1000000:10000000", "5000000:50000000"],
}
QUICK = {
    "bench_mle": ["--sizes", "100000", "--repeats", "3"],
    "bench_bayesian": ["--quick"],
    "bench_clv": ["--sizes", "10000", "--draws", "200"],
    "bench_summary": ["--sizes", "100000:1000000"],
}


def run_script(name: str, args: list[str]) -> dict[str, Any]:
    """Run one benchmark script; return its status, wall time and JSON output."""
    output = OUT / f"{name}.json"
    output.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / f"{name}.py"), *args]
    if name == "bench_end_to_end":
        # writes <folder>/end_to_end.json beside its forecast file
        cmd += ["--output", str(OUT / "end_to_end")]
        output = OUT / "end_to_end" / "end_to_end.json"
    else:
        cmd += ["--output", str(output)]
    print(f"\n=== {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False)
    elapsed = time.perf_counter() - start
    result: dict[str, Any] = {"name": name, "returncode": proc.returncode, "seconds": elapsed}
    if output.exists():
        result["data"] = json.loads(output.read_text())
    return result


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _records(data: Any) -> list[dict[str, Any]]:
    """Flat rows from a script's JSON: a list of records, or parts holding lists."""
    import pandas as pd

    if isinstance(data, list):
        rows = data
    elif isinstance(data, dict):
        rows = []
        for key, value in data.items():
            if isinstance(value, list) and all(isinstance(v, dict) for v in value):
                rows += [{"part": key, **v} for v in value]
        if not rows:
            rows = [data]
    else:
        return []
    flat = pd.json_normalize(rows, sep=".")
    return flat.astype(object).where(flat.notna(), None).to_dict(orient="records")


def write_report(results: list[dict[str, Any]], path: Path) -> None:
    import platform

    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run.py`); every figure below comes from the "
        "run that wrote this file, with each peer measured in the same run on the same "
        f"machine ({platform.machine()}, {_cpu_count()} cores, Python "
        f"{platform.python_version()}). Times in seconds; speed-up = peer / clvmodels.",
        "",
    ]
    for result in results:
        lines += [f"## {result['name']}", ""]
        if result["returncode"] != 0:
            lines += [f"The script exited with code {result['returncode']}.", ""]
        records = _records(result.get("data"))
        if records:
            columns = list(dict.fromkeys(k for r in records for k in r))
            lines += [_table(records, columns), ""]
        lines += [f"(script wall time {result['seconds']:.0f} s)", ""]
    path.write_text("\n".join(lines))


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0


def scaling_plot(results: list[dict[str, Any]], path: Path) -> None:
    """Fit time of both libraries against the number of customers (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mle = next((r for r in results if r["name"] == "bench_mle"), None)
    records = [r for r in _records(mle.get("data")) if r.get("task") == "BG/NBD fit"] if mle \
        else []
    if not records:
        return
    records.sort(key=lambda r: r["customers"])
    n = [r["customers"] for r in records]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.loglog(n, [r["clvmodels_s"] for r in records], "o-", label="clvmodels")
    lt = [(c, r["lifetimes_s"]) for c, r in zip(n, records, strict=True) if r.get("lifetimes_s")]
    if lt:
        ax.loglog(*zip(*lt, strict=True), "s--", label="lifetimes 0.11.3")
    ax.set_xlabel("customers")
    ax.set_ylabel("BG/NBD fit time (s)")
    ax.set_title("BG/NBD maximum-likelihood fit: time vs number of customers")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--only", nargs="*", help="run only these scripts (e.g. bench_mle)")
    parser.add_argument("--end-to-end", action="store_true",
                        help="also run bench_end_to_end.py (10M customers, ~10 minutes)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    plan = dict(QUICK if args.quick else FULL)
    if args.end_to_end:
        plan["bench_end_to_end"] = ["--customers", "100000" if args.quick else "10000000"]
    results = [
        run_script(name, script_args)
        for name, script_args in plan.items()
        if not args.only or name in args.only
    ]
    write_report(results, HERE / "results.md")
    scaling_plot(results, HERE / "scaling.png")
    print(f"\nWrote {HERE / 'results.md'} and {HERE / 'scaling.png'}")
    if any(r["returncode"] != 0 for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
