"""Bayesian speed: clvmodels vs pymc-marketing on CDNOW, and a million customers.

1. Pooled BG/NBD, Pareto/NBD and MBG/NBD by NUTS on the CDNOW calibration data (2,357
   customers), 4 chains x (1000 tune + 1000 draws), with nutpie in both libraries:
   clvmodels' ``HierarchicalBetaGeo()``, ``bayesian(ParetoNBD)()`` and
   ``bayesian(ModifiedBetaGeo)()`` against pymc-marketing's ``BetaGeoModel``,
   ``ParetoNBDModel`` and ``ModifiedBetaGeoModel`` (``fit(method="mcmc",
   nuts_sampler="nutpie")``), each library with its own default priors. Every fit
   runs in a fresh Python process (so neither inherits the other's warm JIT) and the
   clock covers the whole ``fit`` call: model building, compilation and sampling. The
   first fit of each library fills the on-disk compilation caches and is reported
   separately as "cold"; the timed repeats alternate between the libraries. With
   ``--agreement`` pymc-marketing also samples once with our priors (log-normal, as
   the fit records them), and the posterior means must then agree within Monte Carlo
   error.
2. The README's worked example: BG/NBD and Gamma-Gamma on CDNOW by acquisition
   month (three groups), default settings; sampler diagnostics and time per fit.
3. The hierarchical BG/NBD on one million simulated customers in ten groups,
   default settings (nutpie, 4 chains x 1000 + 1000), purchases recorded by day
   (``--resolution day``, as ``rfm_summary`` does by default) or by week.

Usage::

    python benchmarks/bench_bayesian.py                # both parts, full size
    python benchmarks/bench_bayesian.py --quick        # one repeat, 100k customers
    python benchmarks/bench_bayesian.py --part cdnow --repeats 5
    python benchmarks/bench_bayesian.py --part cdnow --models pnbd mbgnbd --agreement
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


# Our model, pymc-marketing's class and the parameters compared, per benchmark name.
MODELS = {
    "bgnbd": ("BG/NBD", "BetaGeoModel", ("r", "alpha", "a", "b")),
    "pnbd": ("Pareto/NBD", "ParetoNBDModel", ("r", "alpha", "s", "beta")),
    "mbgnbd": ("MBG/NBD", "ModifiedBetaGeoModel", ("r", "alpha", "a", "b")),
}


def _our_model(name: str):
    from clvmodels import ModifiedBetaGeo, ParetoNBD
    from clvmodels.models.bayes import bayesian
    from clvmodels.models.hierarchical import HierarchicalBetaGeo

    if name == "bgnbd":
        return HierarchicalBetaGeo()
    return bayesian({"pnbd": ParetoNBD, "mbgnbd": ModifiedBetaGeo}[name])()


def _posterior_report(idata, names) -> dict[str, Any]:
    import arviz as az

    summary = az.summary(idata, var_names=list(names), round_to="none")
    return {
        "means": {k: float(summary.loc[k, "mean"]) for k in names},
        "sds": {k: float(summary.loc[k, "sd"]) for k in names},
        "mcse": {k: float(summary.loc[k, "mcse_mean"]) for k in names},
        "min_ess_bulk": float(summary["ess_bulk"].min()),
        "max_r_hat": float(summary["r_hat"].max()),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }


def worker_clvmodels(name: str, seed: int, log_likelihood: str = "yes") -> dict[str, Any]:
    """Our fit; ``log_likelihood="no"`` leaves out the pointwise log-likelihood (for
    LOO), which pymc-marketing's fit does not compute either."""
    data = _cdnow_summary()
    start = time.perf_counter()
    model = _our_model(name).fit(
        data, random_state=seed, progressbar=False, log_likelihood=log_likelihood == "yes"
    )
    seconds = time.perf_counter() - start
    config = json.loads(model.idata_.posterior.attrs["clvmodels_config"])
    return {
        "seconds": seconds,
        **_posterior_report(model.idata_, MODELS[name][2]),
        "backend": model.idata_.posterior.attrs.get("nutpie_backend"),
        "priors": {k: v for k, v in config["priors_resolved"].items() if k != "group_sigma"},
    }


def worker_pymc_marketing(name: str, seed: int, priors: str = "") -> dict[str, Any]:
    """pymc-marketing's fit of the same model; with ``priors`` (JSON: a normal prior on
    each ``log_<parameter>``, as our fit records it) its priors are replaced by those
    log-normal ones, so that both libraries sample the same posterior."""
    import pymc_marketing.clv as clv
    from pymc_extras.prior import Prior

    data = _cdnow_summary().reset_index()[["customer_id", "frequency", "recency", "T"]]
    _, class_name, names = MODELS[name]
    config = None
    if priors:
        config = {
            k: Prior("LogNormal", mu=v["mu"], sigma=v["sigma"])
            for k, v in ((k, json.loads(priors)[f"log_{k}"]) for k in names)
        }
    start = time.perf_counter()
    model = getattr(clv, class_name)(model_config=config)
    idata = model.fit(
        data,
        method="mcmc",
        nuts_sampler="nutpie",
        draws=1000,
        tune=1000,
        chains=4,
        random_state=seed,
        progressbar=False,
    )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **_posterior_report(idata, names)}


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
def run_worker(*args: str, timeout: float | None = None) -> dict[str, Any]:
    """One worker in a fresh process; past ``timeout`` seconds it is stopped and
    reported as ``{"seconds": timeout, "finished": False}`` (a lower bound)."""
    cmd = [sys.executable, __file__, "--worker", *args]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"seconds": float(timeout or 0.0), "finished": False}
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _describe(res: dict[str, Any]) -> str:
    means = ", ".join(f"{k}={v:.3f} (sd {res['sds'][k]:.3f})" for k, v in res["means"].items())
    return (
        f"{means}; min bulk ESS {res['min_ess_bulk']:.0f}, max R-hat {res['max_r_hat']:.3f}, "
        f"divergences {res['divergences']}"
    )


def _agreement(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    """Per parameter, the difference of the posterior means in units of its Monte Carlo
    standard error (both runs' errors combined)."""
    return {
        k: (ours["means"][k] - theirs["means"][k])
        / float(np.hypot(ours["mcse"][k], theirs["mcse"][k]))
        for k in ours["means"]
    }


def _seconds(res: dict[str, Any]) -> str:
    if res.get("finished", True):
        return f"{res['seconds']:7.2f} s"
    return f"not finished in {res['seconds']:.0f} s"


def bench_cdnow(
    repeats: int, models: list[str], agreement: bool, timeout: float | None,
    log_likelihood: bool = True,
) -> list[dict[str, Any]]:
    return [
        _bench_cdnow_model(name, repeats, agreement, timeout, log_likelihood)
        for name in models
    ]


def _bench_cdnow_model(
    name: str, repeats: int, agreement: bool, timeout: float | None, log_likelihood: bool
) -> dict[str, Any]:
    label = MODELS[name][0]
    ours_ll = "yes" if log_likelihood else "no"
    print(f"CDNOW pooled {label}, NUTS 4 x (1000 + 1000), nutpie in both"
          f"{'' if log_likelihood else ', our pointwise log-likelihood left out'} "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    cold = {
        "clvmodels": run_worker("clvmodels", name, str(SEED), ours_ll),
        "pymc-marketing": run_worker("pymc-marketing", name, str(SEED), timeout=timeout),
    }
    for lib, res in cold.items():
        print(f"  cold {lib:15s} {_seconds(res)}", flush=True)
    times: dict[str, list[float]] = {"clvmodels": [], "pymc-marketing": []}
    runs: dict[str, list[dict[str, Any]]] = {"clvmodels": [], "pymc-marketing": []}
    if not cold["pymc-marketing"].get("finished", True):
        # Compilation is cached after the cold run, but sampling, which did not finish,
        # is not: its timed-out cold run stands for every repeat, as a lower bound.
        times["pymc-marketing"].append(cold["pymc-marketing"]["seconds"])
    for i in range(repeats):
        for lib in times:
            if lib == "pymc-marketing" and not cold[lib].get("finished", True):
                continue
            if lib == "clvmodels":
                res = run_worker(lib, name, str(SEED + 1 + i), ours_ll)
            else:
                res = run_worker(lib, name, str(SEED + 1 + i), timeout=timeout)
            times[lib].append(res["seconds"])
            runs[lib].append(res)
            print(f"  warm {lib:15s} {_seconds(res)} (load average "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    ours, theirs = float(np.median(times["clvmodels"])), float(np.median(times["pymc-marketing"]))
    bound = "" if all(r.get("finished", True) for r in cold.values()) else "at most "
    print(
        f"  median: clvmodels {ours:.2f} s, pymc-marketing {theirs:.2f} s, ratio "
        f"{bound}{ours / theirs:.3f} (target <= 0.2), speed-up {theirs / ours:.1f}x",
        flush=True,
    )
    for lib, results in runs.items():
        for res in results:
            if not res.get("finished", True):
                continue
            print(f"  {lib} ({'its own' if lib == 'pymc-marketing' else 'our'} priors): "
                  f"{_describe(res)}", flush=True)
    row: dict[str, Any] = {
        "task": f"pooled {label} NUTS, CDNOW (2,357 customers)"
        + ("" if log_likelihood else ", no pointwise log-likelihood"),
        "customers": 2357,
        "clvmodels_s": ours,
        "pymc_marketing_s": theirs,
        "ratio": ours / theirs,
        "speedup": theirs / ours,
        "clvmodels_cold_s": cold["clvmodels"]["seconds"],
        "pymc_marketing_cold_s": cold["pymc-marketing"]["seconds"],
        "pymc_marketing_finished": bool(cold["pymc-marketing"].get("finished", True)),
        "repeats": repeats,
    }
    for lib, results in runs.items():
        done = [r for r in results if r.get("finished", True)]
        key = lib.replace("-", "_")
        if done:
            row[f"{key}_min_ess"] = min(r["min_ess_bulk"] for r in done)
            row[f"{key}_divergences"] = sum(r["divergences"] for r in done)
    priors = cold["clvmodels"]["priors"]
    if agreement and all(f"log_{k}" in priors for k in MODELS[name][2]):
        matched = run_worker("pymc-marketing", name, str(SEED), json.dumps(priors),
                             timeout=timeout)
        if not matched.get("finished", True):
            print(f"  pymc-marketing with our priors: not finished in {timeout:.0f} s",
                  flush=True)
            return row
        z = _agreement(cold["clvmodels"], matched)
        print(f"  pymc-marketing with our priors ({matched['seconds']:.1f} s): "
              f"{_describe(matched)}", flush=True)
        print("  difference of posterior means / Monte Carlo error: "
              + ", ".join(f"{k} {v:+.2f}" for k, v in z.items()), flush=True)
        row["agreement_z"] = z
    return row


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
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="the pooled models of the CDNOW part")
    parser.add_argument("--agreement", action="store_true",
                        help="also sample pymc-marketing with our priors and compare means")
    parser.add_argument("--no-log-likelihood", action="store_true",
                        help="our fits skip the pointwise log-likelihood, as pymc-marketing's do")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop a pymc-marketing fit after this many seconds (a bound)")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--resolution", nargs="+", choices=["day", "week"],
                        default=["day", "week"])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 100k customers")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "clvmodels":
            result = worker_clvmodels(rest[0], int(rest[1]), *rest[2:])
        elif kind == "pymc-marketing":
            result = worker_pymc_marketing(rest[0], int(rest[1]), *rest[2:])
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
        rows += bench_cdnow(args.repeats, args.models, args.agreement, args.timeout,
                            not args.no_log_likelihood)
    if args.part in ("cohorts", "all"):
        rows += bench_cohorts(args.seeds)
    if args.part in ("million", "all"):
        rows += bench_million(args.customers, args.resolution)
    if args.output:
        args.output.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
