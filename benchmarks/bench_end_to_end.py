"""End to end at scale: a Parquet transaction log to a CLV forecast file, in one command.

Steps, each timed: the customer summary out of core in DuckDB, BG/NBD and Gamma-Gamma
fits (on compressed sufficient statistics), discounted CLV for 12 months with 90%
intervals from 500 parameter draws, value tiers with membership probabilities, and
the forecast written as Parquet. The log is made by ``generate_transactions.py`` (in
a separate process, not timed with the pipeline) when it does not exist yet.

Peak memory is the largest resident set of this process (``ru_maxrss``), which
includes DuckDB's memory; it is printed with the timings and written, with the
settings and the fitted parameters, to ``<output>/end_to_end.json``.

Examples
--------
::

    python benchmarks/bench_end_to_end.py --customers 10000000
    python benchmarks/bench_end_to_end.py --customers 100000 --output benchmarks/output/e2e
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shown(path: Path) -> str:
    """A path relative to the working directory where possible, for reports."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name


def ensure_log(customers: int, path: Path, transactions: int | None) -> dict:
    if path.exists():
        return {"generated": False, "path": shown(path)}
    cmd = [
        sys.executable,
        str(HERE / "generate_transactions.py"),
        "--customers",
        str(customers),
        "--output",
        str(path),
    ]
    if transactions:
        cmd += ["--transactions", str(transactions)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    info = json.loads(done.stdout)
    info["paths"] = [shown(Path(p)) for p in info["paths"]]
    info["generated"] = True
    info["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--transactions", type=int, default=None,
                        help="rows of the generated log (default: 5 per customer, occasions "
                        "split into order lines)")
    parser.add_argument("--data", type=Path, default=None,
                        help="Parquet log (default: benchmarks/output/e2e_<customers>.parquet)")
    parser.add_argument("--output", type=Path, default=HERE / "output" / "end_to_end")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.9)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory limit")
    parser.add_argument("--seed", type=int, default=2005)
    args = parser.parse_args(argv)

    from clvmodels.clv import customer_lifetime_value
    from clvmodels.models.beta_geo import BetaGeo
    from clvmodels.models.gamma_gamma import GammaGamma
    from clvmodels.outofcore import rfm_summary_duckdb
    from clvmodels.segmentation import segment

    transactions = args.transactions or 5 * args.customers
    data = args.data or HERE / "output" / f"e2e_{args.customers}_{transactions}.parquet"
    log_info = ensure_log(args.customers, data, transactions)
    args.output.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    memory: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)
        memory[name] = round(peak_rss_mb(), 1)
        print(f"{name:>10}: {timings[name]:8.1f} s   peak RSS so far {memory[name]:8.0f} MB",
              flush=True)

    t0 = time.perf_counter()
    summary = rfm_summary_duckdb(
        data, "customer_id", "date", "value", memory_limit=args.memory_limit
    )
    lap("summary", t0)

    t0 = time.perf_counter()
    bgnbd = BetaGeo().fit(summary)
    spend = GammaGamma().fit(summary)
    lap("fit", t0)

    t0 = time.perf_counter()
    forecast = customer_lifetime_value(
        bgnbd,
        spend,
        summary,
        horizon=args.horizon,
        period="M",
        discount_rate=0.01,
        interval=args.interval,
        n_draws=args.draws,
        random_state=args.seed,
        progressbar=False,
        tier_histogram=True,  # the tiers follow: they then need one pass over the draws
    )
    lap("clv", t0)

    t0 = time.perf_counter()
    seg = segment(forecast, progressbar=False)
    lap("tiers", t0)

    t0 = time.perf_counter()
    table = forecast.table.join(
        seg.customers[["tier", "tier_probability", "activity", "segment"]]
    )
    path = args.output / f"forecast_{args.customers}.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=True), path, compression="zstd")
    lap("write", t0)

    total = round(time.perf_counter() - start, 2)
    low, high = "clv_lower", "clv_upper"
    report = {
        "customers": len(summary),
        "transactions": int(summary.attrs["n_transactions"]),
        "log": log_info,
        "draws": args.draws,
        "interval": args.interval,
        "horizon_months": args.horizon,
        "seconds": {**timings, "total": total},
        "peak_rss_mb": {**memory, "total": round(peak_rss_mb(), 1)},
        "bgnbd": bgnbd.params_.round(4).to_dict(),
        "gamma_gamma": spend.params_.round(4).to_dict(),
        "distinct_rows": forecast.settings.get("n_distinct_customers"),
        "total_clv": forecast.total().round(2).to_dict(),
        "interval_width_median": float(np.median(table[high] - table[low])),
        "tiers": seg.tiers[["customers", "clv_total", "mean_tier_probability"]]
        .round(4)
        .reset_index()
        .to_dict(orient="records"),
        "boundaries": seg.settings.get("boundaries"),
        "forecast_file": shown(path),
        "forecast_file_mb": round(path.stat().st_size / 2**20, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
    }
    (args.output / "end_to_end.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"{'total':>10}: {total:8.1f} s   peak RSS {report['peak_rss_mb']['total']:8.0f} MB")
    print(json.dumps({k: report[k] for k in ("customers", "bgnbd", "gamma_gamma")}, indent=None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
