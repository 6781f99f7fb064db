"""Bayesian BG/NBD speed: clvmodels vs pymc-marketing, and a million customers.

1. Pooled BG/NBD by NUTS on the CDNOW calibration data (2,357 customers), 4 chains x
   (1000 tune + 1000 draws), with nutpie in both libraries: clvmodels'
   ``HierarchicalBetaGeo().fit`` against pymc-marketing's ``BetaGeoModel.fit(
   nuts_sampler="nutpie")``. Every fit runs in a fresh Python process (so neither
   inherits the other's warm JIT) and the clock covers the whole ``fit`` call: model
   building, compilation and sampling. The first fit of each library fills the
   on-disk compilation caches and is reported separately as "cold"; the timed
   repeats alternate between the libraries.
2. The README's worked example: BG/NBD and Gamma-Gamma on CDNOW by acquisition
   month (three groups), default settings; sampler diagnostics and time per fit.
3. The hierarchical BG/NBD on one million simulated customers in ten groups,
   default settings (nutpie, 4 chains x 1000 + 1000), purchases recorded by day
   (``--resolution day``, as ``rfm_summary`` does by default) or by week.

Usage::

    python benchmarks/bench_bayesian.py                # both parts, full size
    python benchmarks/bench_bayesian.py --quick        # one repeat, 100k customers
    python benchmarks/bench_bayesian.py --part cdnow --repeats 5
    python benchmarks/bench_bayesian.py --part cohorts --seeds 1 2 3

pymc-marketing is the ``bench`` extra (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20240601


# -- workers (run in a fresh process each) ----------------------------------------------
def _cdnow_summary():
    from clvmodels import load_cdnow, rfm_summary

    return rfm_summary(load_cdnow(), "customer_id", "date", observation_end="1997-09-30")


def worker_clvmodels(seed: int) -> dict[str, Any]:
    from clvmodels.models.hierarchical import HierarchicalBetaGeo

    data = _cdnow_summary()
    start = time.perf_counter()
    model = HierarchicalBetaGeo().fit(data, random_state=seed, progressbar=False)
    seconds = time.perf_counter() - start
    table = model.summary()
    return {
        "seconds": seconds,
        "means": model.params_.to_dict(),
        "min_ess_bulk": float(table["ess_bulk"].min()),
        "max_r_hat": float(table["r_hat"].max()),
        "divergences": int(model.idata_.sample_stats["diverging"].sum()),
        "backend": model.idata_.posterior.attrs.get("nutpie_backend"),
    }


def worker_pymc_marketing(seed: int) -> dict[str, Any]:
    import arviz as az
    from pymc_marketing.clv import BetaGeoModel

    data = _cdnow_summary().reset_index()[["customer_id", "frequency", "recency", "T"]]
    start = time.perf_counter()
    model = BetaGeoModel()
    idata = model.fit(
        data,
        nuts_sampler="nutpie",
        draws=1000,
        tune=1000,
        chains=4,
        random_state=seed,
        progressbar=False,
    )
    seconds = time.perf_counter() - start
    names = ["r", "alpha", "a", "b"]
    summary = az.summary(idata, var_names=names)
    return {
        "seconds": seconds,
        "means": {k: float(idata.posterior[k].mean()) for k in names},
        "min_ess_bulk": float(summary["ess_bulk"].min()),
        "max_r_hat": float(summary["r_hat"].max()),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }


def worker_cohorts(seed: int) -> dict[str, Any]:
    from clvmodels import load_cdnow, rfm_summary
    from clvmodels.models.hierarchical import HierarchicalBetaGeo, HierarchicalGammaGamma

    transactions = load_cdnow()
    data = rfm_summary(
        transactions, "customer_id", "date", "amount", observation_end="1997-09-30"
    )
    first = transactions.groupby("customer_id")["date"].min()
    data["cohort"] = first.dt.strftime("%b").reindex(data.index)
    out = {}
    for name, cls in (("BG/NBD", HierarchicalBetaGeo), ("Gamma-Gamma", HierarchicalGammaGamma)):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = cls(group_col="cohort").fit(data, random_state=seed, progressbar=False)
        seconds = time.perf_counter() - start
        table = model.summary()
        out[name] = {
            "seconds": seconds,
            "divergences": int(model.idata_.sample_stats["diverging"].sum()),
            "max_r_hat": float(table["r_hat"].max()),
            "min_ess_bulk": float(table["ess_bulk"].min()),
            "leapfrog_per_draw": float(model.idata_.sample_stats["n_steps"].mean()),
            "warnings": [str(w.message)[:200] for w in caught],
        }
    return out


def simulate_groups(n_customers: int, n_groups: int, resolution: str, seed: int):
    """Groups around CDNOW-like parameters, recorded by day or by week.

    Customers are acquired uniformly over 12 weeks and observed until week 39, in
    continuous time; their first and last purchases and the end of observation are
    then recorded as day (or week) numbers, as ``rfm_summary`` does, so recency and
    ``T`` are differences of period numbers.
    """
    import pandas as pd

    from clvmodels.simulate import simulate_bgnbd

    rng = np.random.default_rng(seed)
    step = 1 / 7 if resolution == "day" else 1.0
    sizes = rng.multinomial(n_customers, np.full(n_groups, 1 / n_groups))
    centre = np.log([0.25, 4.5, 0.8, 2.4])
    frames, truth = [], {}
    for g, n in enumerate(sizes):
        theta = np.exp(centre + 0.3 * rng.standard_normal(4))
        truth[f"g{g}"] = theta
        acquired = rng.uniform(0, 12, size=n)
        frame = simulate_bgnbd(n, *theta, T=39 - acquired, random_state=rng)
        first = np.floor(acquired / step)
        last = np.floor((acquired + frame["recency"].to_numpy()) / step)
        frame["recency"] = np.where(frame["frequency"] > 0, (last - first) * step, 0.0)
        frame["T"] = (np.floor(39 / step) - first) * step
        frame.index = f"g{g}-" + frame.index.astype(str)
        frame["group"] = f"g{g}"
        frames.append(frame)
    return pd.concat(frames), pd.DataFrame(truth, index=["r", "alpha", "a", "b"]).T


def worker_million(n_customers: int, resolution: str, seed: int) -> dict[str, Any]:
    from clvmodels import compress
    from clvmodels.models.hierarchical import HierarchicalBetaGeo

    data, truth = simulate_groups(n_customers, 10, resolution, seed)
    rows = len(compress(data, extra=["group"])[0])
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = HierarchicalBetaGeo(group_col="group").fit(
            data, random_state=seed, progressbar=False
        )
    seconds = time.perf_counter() - start
    table = model.summary(interval=0.94)
    errors = np.abs(np.log(model.params_.loc[truth.index]) - np.log(truth)).to_numpy()
    inside = [
        table.loc[(k, g), "lower 94%"] <= truth.loc[g, k] <= table.loc[(k, g), "upper 94%"]
        for g in truth.index
        for k in truth.columns
    ]
    return {
        "seconds": seconds,
        "distinct_rows": rows,
        "min_ess_bulk": float(table["ess_bulk"].min()),
        "max_r_hat": float(table["r_hat"].max()),
        "divergences": int(model.idata_.sample_stats["diverging"].sum()),
        "leapfrog_per_draw": float(model.idata_.sample_stats["n_steps"].mean()),
        "max_abs_log_error": float(errors.max()),
        "coverage_94": float(np.mean(inside)),
        "backend": model.idata_.posterior.attrs.get("nutpie_backend"),
        "centred_entries": sum(
            share > 0.5 for shares in model.centering_.values() for share in shares.values()
        ),
        "warnings": [
            str(w.message)[:200] for w in caught if "log-likelihood" not in str(w.message)
        ],
    }


# -- driver -------------------------------------------------------------------------------
def run_worker(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", *args]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_cdnow(repeats: int) -> list[dict[str, Any]]:
    print("CDNOW pooled BG/NBD, NUTS 4 x (1000 + 1000), nutpie in both", flush=True)
    cold = {
        "clvmodels": run_worker("clvmodels", str(SEED)),
        "pymc-marketing": run_worker("pymc-marketing", str(SEED)),
    }
    for name, res in cold.items():
        print(f"  cold {name:15s} {res['seconds']:7.2f} s", flush=True)
    times: dict[str, list[float]] = {"clvmodels": [], "pymc-marketing": []}
    last: dict[str, dict[str, Any]] = {}
    for i in range(repeats):
        for name in times:
            res = run_worker(name, str(SEED + 1 + i))
            times[name].append(res["seconds"])
            last[name] = res
            print(f"  warm {name:15s} {res['seconds']:7.2f} s", flush=True)
    ours, theirs = float(np.median(times["clvmodels"])), float(np.median(times["pymc-marketing"]))
    print(
        f"  median: clvmodels {ours:.2f} s, pymc-marketing {theirs:.2f} s, "
        f"ratio {ours / theirs:.3f} (target <= 0.2), speed-up {theirs / ours:.1f}x",
        flush=True,
    )
    for name, res in last.items():
        means = ", ".join(f"{k}={v:.3f}" for k, v in res["means"].items())
        print(
            f"  {name}: {means}; min bulk ESS {res['min_ess_bulk']:.0f}, max R-hat "
            f"{res['max_r_hat']:.3f}, divergences {res['divergences']}",
            flush=True,
        )
    return [
        {
            "task": "pooled BG/NBD NUTS, CDNOW (2,357 customers)",
            "customers": 2357,
            "clvmodels_s": ours,
            "pymc_marketing_s": theirs,
            "ratio": ours / theirs,
            "speedup": theirs / ours,
            "clvmodels_cold_s": cold["clvmodels"]["seconds"],
            "pymc_marketing_cold_s": cold["pymc-marketing"]["seconds"],
            "repeats": repeats,
            "clvmodels_min_ess": last["clvmodels"]["min_ess_bulk"],
            "pymc_marketing_min_ess": last["pymc-marketing"]["min_ess_bulk"],
        }
    ]


def bench_cohorts(seeds: list[int]) -> list[dict[str, Any]]:
    print("CDNOW by acquisition month (3 groups), default settings", flush=True)
    rows = []
    for seed in seeds:
        res = run_worker("cohorts", str(seed))
        for name, r in res.items():
            print(
                f"  seed {seed} {name:12s} {r['seconds']:6.1f} s, divergences "
                f"{r['divergences']}, max R-hat {r['max_r_hat']:.4f}, min bulk ESS "
                f"{r['min_ess_bulk']:.0f}, {r['leapfrog_per_draw']:.1f} leapfrog steps per "
                f"draw; warnings: {len(r['warnings'])}",
                flush=True,
            )
            rows.append({"task": f"{name} by cohort, seed {seed}", **r})
    return rows


def bench_million(n_customers: int, resolutions: list[str]) -> list[dict[str, Any]]:
    out = []
    for resolution in resolutions:
        print(
            f"Hierarchical BG/NBD, {n_customers:,} customers in 10 groups, recorded by "
            f"{resolution}, nutpie 4 x (1000 + 1000)",
            flush=True,
        )
        res = run_worker("million", str(n_customers), resolution, str(SEED))
        print(
            f"  {res['seconds']:.1f} s on {res['distinct_rows']:,} distinct rows "
            f"(target < 180 s); min bulk ESS {res['min_ess_bulk']:.0f}, max R-hat "
            f"{res['max_r_hat']:.3f}, divergences {res['divergences']}, "
            f"{res['leapfrog_per_draw']:.1f} leapfrog steps per draw, 94% coverage of the "
            f"true group parameters {res['coverage_94']:.2f}, largest |log error| "
            f"{res['max_abs_log_error']:.3f}; backend {res['backend']}, "
            f"{res['centred_entries']} of 40 group coordinates sampled mostly centred",
            flush=True,
        )
        for message in res["warnings"]:
            print(f"  warning: {message}", flush=True)
        out.append(
            {
                "task": f"hierarchical BG/NBD NUTS, 10 groups, by {resolution}",
                "customers": n_customers,
                "distinct_rows": res["distinct_rows"],
                "clvmodels_s": res["seconds"],
                "min_ess": res["min_ess_bulk"],
                "max_r_hat": res["max_r_hat"],
                "divergences": res["divergences"],
                "coverage_94": res["coverage_94"],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument(
        "--part", choices=["cdnow", "cohorts", "million", "all"], default="all"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--resolution", nargs="+", choices=["day", "week"],
                        default=["day", "week"])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 100k customers")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "clvmodels":
            result = worker_clvmodels(int(rest[0]))
        elif kind == "pymc-marketing":
            result = worker_pymc_marketing(int(rest[0]))
        elif kind == "cohorts":
            result = worker_cohorts(int(rest[0]))
        else:
            result = worker_million(int(rest[0]), rest[1], int(rest[2]))
        print(json.dumps(result))
        return

    if args.quick:
        args.repeats, args.customers = 1, 100_000
    rows: list[dict[str, Any]] = []
    if args.part in ("cdnow", "all"):
        rows += bench_cdnow(args.repeats)
    if args.part in ("cohorts", "all"):
        rows += bench_cohorts(args.seeds)
    if args.part in ("million", "all"):
        rows += bench_million(args.customers, args.resolution)
    if args.output:
        args.output.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
