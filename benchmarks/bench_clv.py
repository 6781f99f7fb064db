"""Discounted CLV with intervals at scale: time and peak memory, and pymc-marketing beside it.

For each number of customers, a summary is simulated from the CDNOW BG/NBD and
Gamma-Gamma estimates, acquired over 12 weeks and observed for 66-78 weeks at daily
resolution (whole days for recency and T, spends in cents), which is what a real daily
transaction log gives. Then, each in a fresh process so that its memory is its own:

* ``customer_lifetime_value`` (12 months, 1% a month, 90% intervals, ``--draws``
  parameter draws, ``--n-jobs`` threads: every CPU by default), time and peak resident
  memory above the process's baseline (``*_peak_gb``), and the process's whole peak
  resident memory while it ran (``*_rss_gb``; sampled every 20 ms from /proc). A step
  that follows another starts from what that one left resident, which its ``*_peak_gb``
  does not count: compare steps of two versions by ``*_rss_gb``. Time is wall-clock
  (``*_s``) and CPU time of the process (``*_cpu_s``), which is much less disturbed by
  other work on a shared machine;
* ``segment`` on that forecast (with ``--tier-histogram`` the CLV keeps the per-draw
  histogram that lets ``segment`` pass over the draws once instead of twice);
* optionally (``--predictive``) the same forecast with predictive intervals, and
  ``segment`` on it (tiers with both the parameter and the realised-value
  probabilities); with ``--n-futures 100`` also both again with 100 simulated futures
  per customer instead of one per draw;
* optionally (``--pareto``) Pareto/NBD + Gamma-Gamma predictive CLV of CDNOW's 2,357
  customers;
* pymc-marketing's ``expected_customer_lifetime_value`` with a posterior of the same
  number of draws (our parameter draws, stored as a one-chain posterior), followed by
  the per-customer 90% quantiles so that both produce the same output. It holds the
  full draws x customers array of every intermediate, so it is run only up to
  ``--pmm-max`` customers, and under an address-space limit (``--pmm-limit-gb``) so a
  size that does not fit fails instead of swapping.

The point CLVs of both libraries are compared (same parameters, 30-day months) at the
smallest size.

Usage::

    python benchmarks/bench_clv.py                           # 10k, 100k, 1M x 1000 draws
    python benchmarks/bench_clv.py --sizes 100000 --predictive
    python benchmarks/bench_clv.py --sizes 1000000 --predictive --n-futures 100 --no-pmm
    python benchmarks/bench_clv.py --sizes 1000000 --predictive --n-futures 100 50 \
        --without-one-per-draw --no-pmm
    python benchmarks/bench_clv.py --sizes 20000 --predictive --frequent-buyers --no-pmm
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing as mp
import resource
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CDNOW_BGNBD_DAYS = {"r": 0.2426, "alpha": 4.4136 * 7, "a": 0.7929, "b": 2.4259}
# Customers who buy every few days while active (``--frequent-buyers``): a rate of 0.2 a
# day on average and a dropout of about 2.5% after each purchase, so that those still
# active are expected to buy dozens of times over the horizon.
FREQUENT_BGNBD_DAYS = {"r": 2.0, "alpha": 10.0, "a": 0.5, "b": 20.0}
CDNOW_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def simulated_summary(n_customers: int, seed: int = 0, frequent: bool = False) -> pd.DataFrame:
    """Daily-resolution summary (time unit: days) of simulated customers, CDNOW's or
    (``frequent``) ones who buy every few days."""
    from clvmodels.simulate import simulate_customers

    rng = np.random.default_rng(seed)
    T = rng.integers(66 * 7, 78 * 7 + 1, n_customers).astype(float)
    params = FREQUENT_BGNBD_DAYS if frequent else CDNOW_BGNBD_DAYS
    data = simulate_customers(n_customers, params, CDNOW_GG, T=T, random_state=rng, time_unit="D")
    data["recency"] = np.minimum(np.round(data["recency"]), data["T"])
    repeat = data["frequency"] > 0
    data["monetary_value"] = np.where(repeat, np.maximum(data["monetary_value"].round(2), 0.01), 0)
    return data


# --------------------------------------------------------------------------------------
# Memory: resident set size sampled in a thread while the measured call runs
# --------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every 20 ms."""

    def __enter__(self) -> PeakMemory:
        self.baseline = _rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def extra_gb(self) -> float:
        return (self.peak - self.baseline) / 1e9

    @property
    def peak_gb(self) -> float:
        return self.peak / 1e9


class Timed:
    """Wall-clock and CPU seconds of the ``with`` block."""

    def __enter__(self) -> Timed:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def _fitted_models(data: pd.DataFrame) -> tuple[Any, Any]:
    from clvmodels import BetaGeo, GammaGamma

    return BetaGeo().fit(data), GammaGamma().fit(data)


# --------------------------------------------------------------------------------------
# Workers (each in its own process)
# --------------------------------------------------------------------------------------
def _ours(
    n: int,
    draws: int,
    predictive: bool,
    tier_histogram: bool,
    n_jobs: int,
    futures: list[int | None],
    frequent: bool,
    queue: mp.Queue,
) -> None:
    from clvmodels.clv import customer_lifetime_value
    from clvmodels.segmentation import segment

    data = simulated_summary(n, frequent=frequent)
    bg, gg = _fitted_models(data)
    out: dict[str, Any] = {"customers": n, "draws": draws, "tier_histogram": tier_histogram,
                           "n_jobs": n_jobs, "frequent_buyers": frequent}
    # Keep the per-draw histogram that lets `segment` pass over the draws once.
    extra: dict[str, Any] = {"tier_histogram": True} if tier_histogram else {}
    if "n_jobs" in inspect.signature(customer_lifetime_value).parameters:
        extra["n_jobs"] = n_jobs  # (older versions, measured for comparison, have no threads)
    with PeakMemory() as mem, Timed() as took:
        fc = customer_lifetime_value(bg, gg, data, n_draws=draws, random_state=1,
                                     progressbar=False, **extra)
    out["clv_s"], out["clv_cpu_s"] = took.wall, took.cpu
    out["clv_peak_gb"], out["clv_rss_gb"] = mem.extra_gb, mem.peak_gb
    out["distinct_rows"] = fc.settings["n_distinct_customers"]
    out["mean_expected_purchases"] = float(fc.table["expected_purchases"].mean())
    out["total_clv"] = fc.total().to_dict()
    with PeakMemory() as mem, Timed() as took:
        seg = segment(fc, progressbar=False)
    out["segment_s"], out["segment_cpu_s"] = took.wall, took.cpu
    out["segment_peak_gb"], out["segment_rss_gb"] = mem.extra_gb, mem.peak_gb
    out["segment_boundaries"] = seg.settings["boundaries"]
    # One future per draw (None), then each number of futures per customer asked for.
    for n_futures in futures if predictive else []:
        del fc, seg
        if n_futures is not None:
            extra["n_futures"] = n_futures
        tag = "" if n_futures is None else f"_{n_futures}_futures"
        with PeakMemory() as mem, Timed() as took:
            fc = customer_lifetime_value(
                bg, gg, data, n_draws=draws, predictive=True, random_state=1, progressbar=False,
                **extra,
            )
        out[f"predictive{tag}_s"], out[f"predictive{tag}_cpu_s"] = took.wall, took.cpu
        out[f"predictive{tag}_peak_gb"] = mem.extra_gb
        out[f"predictive{tag}_rss_gb"] = mem.peak_gb
        out[f"predictive{tag}_total"] = fc.total().to_dict()
        # Tiers with both probabilities (realised ones where the package has them).
        with PeakMemory() as mem, Timed() as took:
            seg = segment(fc, progressbar=False)
        out[f"segment_predictive{tag}_s"] = took.wall
        out[f"segment_predictive{tag}_cpu_s"] = took.cpu
        out[f"segment_predictive{tag}_peak_gb"] = mem.extra_gb
        out[f"segment_predictive{tag}_rss_gb"] = mem.peak_gb
        out["realised_tier_probability"] = "tier_probability_realised" in seg.customers
    queue.put(out)


def _pareto_cdnow(draws: int, queue: mp.Queue) -> None:
    """Pareto/NBD + Gamma-Gamma predictive CLV of CDNOW's 2,357 customers."""
    from clvmodels import GammaGamma, ParetoNBD, load_cdnow, rfm_summary
    from clvmodels.clv import customer_lifetime_value

    data = rfm_summary(load_cdnow(), "customer_id", "date", "amount", observation_end="1997-09-30")
    pn, gg = ParetoNBD().fit(data), GammaGamma().fit(data)
    # One untimed call, so that compiled code (if any) is loaded from its cache.
    customer_lifetime_value(pn, gg, data, n_draws=2, predictive=True, progressbar=False)
    with Timed() as took:
        fc = customer_lifetime_value(
            pn, gg, data, n_draws=draws, predictive=True, random_state=1, progressbar=False
        )
    queue.put({"pareto_cdnow_predictive_s": took.wall, "pareto_cdnow_predictive_cpu_s": took.cpu,
               "draws": draws, "total": fc.total().to_dict()})  # fmt: skip


def _pymc_marketing(n: int, draws: int, limit_gb: float, frequent: bool, queue: mp.Queue) -> None:
    import arviz as az
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    data = simulated_summary(n, frequent=frequent)
    bg, gg = _fitted_models(data)
    bg_draws = bg.param_draws(draws, random_state=1)
    gg_draws = gg.param_draws(draws, random_state=2)
    frame = data.reset_index()[["customer_id", "frequency", "recency", "T", "monetary_value"]]
    bgm = BetaGeoModel(data=frame.drop(columns="monetary_value"))
    bgm.build_model()
    bgm.fit_result = az.from_dict(
        posterior={k: bg_draws[k].to_numpy()[None] for k in "r alpha a b".split()}
    )
    ggm = GammaGammaModel(data=frame[frame["frequency"] > 0])
    ggm.build_model()
    ggm.fit_result = az.from_dict(
        posterior={
            "p": gg_draws["p"].to_numpy()[None],
            "q": gg_draws["q"].to_numpy()[None],
            "v": gg_draws["gamma"].to_numpy()[None],
        }
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        virtual = int(fh.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (virtual + int(limit_gb * 1e9), hard))
    out: dict[str, Any] = {"customers": n, "draws": draws}
    try:
        with PeakMemory() as mem, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            clv = ggm.expected_customer_lifetime_value(
                bgm, frame.copy(), future_t=12, discount_rate=0.01, time_unit="D"
            )
            clv.quantile([0.05, 0.95], dim=("chain", "draw"))
            out["pmm_s"] = time.perf_counter() - start
        out["pmm_peak_gb"] = mem.extra_gb
    except MemoryError as err:
        out["pmm_error"] = f"MemoryError within {limit_gb} GB ({err})"
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    queue.put(out)


def _agreement(queue: mp.Queue) -> None:
    """Point CLV of both libraries with the same parameters and 30-day months."""
    import arviz as az
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    from clvmodels.clv import customer_lifetime_value

    data = simulated_summary(5000, seed=3)
    bg, gg = _fitted_models(data)
    ours = customer_lifetime_value(bg, gg, data, period="30D", n_draws=2, random_state=0)
    frame = data.reset_index()[["customer_id", "frequency", "recency", "T", "monetary_value"]]
    bgm = BetaGeoModel(data=frame.drop(columns="monetary_value"))
    bgm.build_model()
    bgm.fit_result = az.from_dict(
        posterior={k: np.array([[bg.params_[k]]]) for k in "r alpha a b".split()}
    )
    ggm = GammaGammaModel(data=frame[frame["frequency"] > 0])
    ggm.build_model()
    ggm.fit_result = az.from_dict(
        posterior={
            "p": np.array([[gg.params_["p"]]]),
            "q": np.array([[gg.params_["q"]]]),
            "v": np.array([[gg.params_["gamma"]]]),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ggm.expected_customer_lifetime_value(
            bgm, frame.copy(), future_t=12, discount_rate=0.01, time_unit="D"
        )
    theirs = np.asarray(theirs).reshape(-1)
    rel = np.abs(theirs - ours.table["clv"].to_numpy()) / ours.table["clv"].to_numpy()
    queue.put({"max_relative_difference": float(rel.max()), "customers": len(data)})


def _in_process(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"error": f"worker exited with code {proc.exitcode}"}
    return queue.get(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--predictive", action="store_true")
    parser.add_argument("--n-futures", type=int, nargs="+", default=[],
                        help="with --predictive: also with this many futures per customer "
                        "(n_futures), after the forecast with one future per draw")  # fmt: skip
    parser.add_argument("--without-one-per-draw", action="store_true",
                        help="with --n-futures: skip the predictive forecast with one future "
                        "per draw (the slowest)")  # fmt: skip
    parser.add_argument("--tier-histogram", action="store_true",
                        help="CLV keeps the histogram that tiers need (one pass in segment)")
    parser.add_argument("--pmm-max", type=int, default=100_000)
    parser.add_argument("--pmm-limit-gb", type=float, default=3.0)
    parser.add_argument("--pareto", action="store_true",
                        help="also Pareto/NBD predictive CLV on CDNOW")  # fmt: skip
    parser.add_argument("--no-pmm", action="store_true", help="skip pymc-marketing")
    parser.add_argument("--n-jobs", type=int, default=-1,
                        help="threads of our CLV and tiers (-1: every CPU)")  # fmt: skip
    parser.add_argument("--frequent-buyers", action="store_true",
                        help="customers who buy every few days (dozens of purchases each "
                        "over the horizon) instead of CDNOW's")  # fmt: skip
    parser.add_argument("--output", type=Path, default=Path("benchmarks/output/bench_clv.json"))
    args = parser.parse_args()

    try:
        import pymc_marketing  # noqa: F401

        have_pmm = not args.no_pmm
    except ImportError:
        have_pmm = False

    results: dict[str, Any] = {"clvmodels": [], "pymc_marketing": []}
    for n in args.sizes:
        row = _in_process(
            _ours, n, args.draws, args.predictive, args.tier_histogram, args.n_jobs,
            [*([] if args.without_one_per_draw and args.n_futures else [None]),
             *args.n_futures],
            args.frequent_buyers,
        )
        results["clvmodels"].append(row)
        print(json.dumps(row, default=float))
    if args.pareto:
        results["pareto_cdnow"] = _in_process(_pareto_cdnow, args.draws)
        print(json.dumps(results["pareto_cdnow"], default=float))
    if have_pmm:
        results["agreement"] = _in_process(_agreement)
        print("point CLV vs pymc-marketing:", results["agreement"])
        for n in [s for s in args.sizes if s <= args.pmm_max]:
            row = _in_process(
                _pymc_marketing, n, args.draws, args.pmm_limit_gb, args.frequent_buyers
            )
            results["pymc_marketing"].append(row)
            print(json.dumps(row, default=float))
            if "pmm_s" not in row:
                break
    else:
        print("pymc-marketing is not installed (pip install '.[bench]'): comparison skipped")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=float))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
