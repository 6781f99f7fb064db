"""Customer summary from a Parquet log: DuckDB out of core vs pandas in memory.

For each size the log is generated once (``generate_transactions.py``), then each
engine runs in a fresh Python process, so that its peak memory is its own:

* ``duckdb``: ``rfm_summary_duckdb(path, ...)`` (what ``rfm_summary(path, ...)``
  does), with a DuckDB memory limit;
* ``pandas``: ``pd.read_parquet`` of the needed columns, then ``rfm_summary``.

Time is the wall-clock time of the work inside the child (imports excluded); peak
memory is the child's maximum resident set (``wait4``'s ``ru_maxrss``). A child whose
resident memory passes ``--memory-cap`` is killed and recorded as not surviving, so
the table shows the pandas path on the largest size it survives. Each (size, engine)
runs ``--repeat`` times; the median time and the largest peak are reported.

Examples
--------
::

    python benchmarks/bench_summary.py --sizes 1000000:10000000 5000000:50000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time
engine, path, memory_limit = sys.argv[1], sys.argv[2], sys.argv[3]
import pandas as pd
from clvmodels.data import rfm_summary
from clvmodels.outofcore import rfm_summary_duckdb
t0 = time.perf_counter()
if engine == "duckdb":
    summary = rfm_summary_duckdb(path, "customer_id", "date", "value", memory_limit=memory_limit)
else:
    log = pd.read_parquet(path, columns=["customer_id", "date", "value"])
    summary = rfm_summary(log, "customer_id", "date", "value")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "customers": len(summary),
                  "transactions": summary.attrs["n_transactions"],
                  "frequency_sum": int(summary["frequency"].sum()),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_child(engine: str, path: Path, memory_limit: str, cap_mb: float) -> dict:
    """One run in a fresh process: its result, wall time, peak RSS, or why it died."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, engine, str(path), memory_limit],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = False
    # wait4 (not Popen.poll) reaps the child, so that its resource usage, peak RSS
    # included, is not lost.
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if _rss_mb(proc.pid) > cap_mb:
            proc.kill()
            killed = True
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    wall = time.perf_counter() - t0
    peak = usage.ru_maxrss / 1024
    if killed:
        return {"ok": False, "why": f"killed above {cap_mb:.0f} MB", "peak_mb": peak}
    if proc.returncode != 0 or not out.strip():
        return {"ok": False, "why": (err.strip().splitlines() or ["failed"])[-1], "peak_mb": peak}
    result = json.loads(out.strip().splitlines()[-1])
    result.update({"ok": True, "wall_seconds": wall, "peak_mb": max(peak, result["maxrss_mb"])})
    return result


def ensure_log(customers: int, transactions: int, folder: Path) -> Path:
    path = folder / f"summary_{customers}_{transactions}.parquet"
    if not path.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "generate_transactions.py"),
                "--customers", str(customers),
                "--transactions", str(transactions),
                "--output", str(path),
            ],
            check=True,
            capture_output=True,
        )
    return path


def parse_size(text: str) -> tuple[int, int]:
    customers, _, transactions = text.partition(":")
    return int(float(customers)), int(float(transactions))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size,
        default=[
            (100_000, 1_000_000),
            (1_000_000, 10_000_000),
            (5_000_000, 50_000_000),
            (10_000_000, 100_000_000),
        ],
        help="customers:transactions pairs",
    )
    parser.add_argument("--engines", nargs="+", default=["duckdb", "pandas"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory limit")
    parser.add_argument("--memory-cap", default=8_000, type=float,
                        help="kill a run whose resident memory passes this many MB")
    parser.add_argument("--data", type=Path, default=HERE / "output")
    parser.add_argument("--output", "--json", dest="json", type=Path,
                        default=HERE / "output" / "bench_summary.json",
                        help="JSON file for the results")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)

    rows = []
    dead: set[str] = set()
    for customers, transactions in args.sizes:
        path = ensure_log(customers, transactions, args.data)
        size_mb = path.stat().st_size / 2**20
        for engine in args.engines:
            if engine in dead:  # it did not survive a smaller size
                rows.append({"engine": engine, "customers": customers,
                             "transactions": transactions, "ok": False,
                             "why": "skipped: failed at a smaller size"})
                continue
            runs = [run_child(engine, path, args.memory_limit, args.memory_cap)
                    for _ in range(args.repeat)]
            good = [r for r in runs if r["ok"]]
            row = {"engine": engine, "customers": customers, "transactions": transactions,
                   "file_mb": round(size_mb, 1), "runs": len(runs), "ok": len(good) == len(runs)}
            if good:
                row["seconds_median"] = round(statistics.median(r["seconds"] for r in good), 2)
                row["seconds_all"] = [round(r["seconds"], 2) for r in good]
                row["peak_mb_max"] = round(max(r["peak_mb"] for r in good), 0)
                row["customers_out"] = good[0]["customers"]
                row["frequency_sum"] = good[0]["frequency_sum"]
            if not row["ok"]:
                row["why"] = next(r["why"] for r in runs if not r["ok"])
                dead.add(engine)
            rows.append(row)
            print(json.dumps(row), flush=True)
    # The peer measured in the same run: pandas over DuckDB, time and peak memory.
    for row in rows:
        peer = next(
            (p for p in rows if p["engine"] == "pandas" and p["customers"] == row["customers"]
             and p["transactions"] == row["transactions"]),
            None,
        )
        if row["engine"] == "duckdb" and row.get("seconds_median"):
            if peer is not None and peer.get("ok"):
                row["pandas_over_duckdb_time"] = round(
                    peer["seconds_median"] / row["seconds_median"], 2
                )
                row["pandas_over_duckdb_memory"] = round(
                    peer["peak_mb_max"] / row["peak_mb_max"], 2
                )
            elif peer is not None:
                row["pandas_over_duckdb_time"] = f"pandas failed: {peer.get('why')}"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print()
    print("| customers | transactions | engine | median s | peak MB | runs |")
    print("|---:|---:|---|---:|---:|---|")
    for r in rows:
        if r.get("seconds_median") is not None and r["ok"]:
            print(f"| {r['customers']:,} | {r['transactions']:,} | {r['engine']} | "
                  f"{r['seconds_median']:.1f} | {r['peak_mb_max']:,.0f} | {r['seconds_all']} |")
        else:
            print(f"| {r['customers']:,} | {r['transactions']:,} | {r['engine']} | - | - | "
                  f"{r.get('why', '')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
