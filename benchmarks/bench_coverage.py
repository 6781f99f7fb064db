"""Coverage of clvmodels' intervals, measured by rolling-origin evaluation (issue 13).

Four parts, each coverage with its binomial standard error:

1. **CDNOW, rolling origin.** The full bundled cohort (23,570 customers, 1997-01-01 to
   1998-06-30; ``--cdnow-cohort sample`` for the 1/10 sample of 2,357) is cut every
   ``--cdnow-step`` weeks; at each cut BG/NBD + Gamma-Gamma are
   fitted on the log up to the cut and forecast the next ``--cdnow-holdout`` weeks
   (no discounting, predictive intervals). Measured: customers' 90% predictive
   intervals (share of customer-cuts inside), the total's 90% interval without and
   with common shocks (:mod:`clvmodels.shocks`, estimated on the log up to the cut), and
   the calibration of the tier probability (``--tier-column``: of customers given about
   p, the share whose realised value reached the top 10%), per probability decile. The
   holdouts of neighbouring cuts overlap, so the cuts are not independent: the
   binomial standard error of the totals' coverage is a lower bound on its noise.
2. **CDNOW 1997-09-30 -> 1998-06-30.** The issue's holdout (39 weeks), reported as it
   falls: inside its interval, or by how many interval widths outside. Nothing here is
   tuned to it.
3. **Simulated cohorts.** ``--replications`` cohorts of ``--customers`` customers
   from the BG/NBD + Gamma-Gamma with the CDNOW estimates (39 calibration + 39 holdout
   weeks), without common shocks and with weekly log shocks of known size (AR(1));
   coverage of the total's 90% interval without and with the estimated shocks (by
   ``--n-refits`` refits on simulated shocked cohorts, by default ``shocked_total``'s,
   and by the level-only multipliers), the mean width ratio (default / plain) and the
   customers' coverage. The CDNOW parts use the default. With ``--true-shocks`` the
   default interval is made a second time with the shocks' true ``(sd, lag-one)`` in
   place of their estimate, and a second table shows where coverage is lost: the
   misses below and above, and the spread of the intervals' log half-widths across
   cohorts (estimated and true), with the coverage that every cohort would have had
   with the mean half-width of the estimated intervals around its own centre.
   ``--trend-absorbed`` gives ``estimate_common_shocks`` the share of a trend the model
   absorbs in every part (by default it is measured by refits).
4. **Tier probabilities on simulated cohorts.** ``--tier-replications`` cohorts of
   ``--tier-customers`` from the same model, fitted to 1997-09-30 and forecast for
   ``--cdnow-holdout`` weeks, without and with weekly shocks (``--tier-shocks``): the
   calibration of ``--tier-column`` pooled over cohorts, where the model is right.

``--workers`` runs the cohorts in parallel processes, ``--shocks`` and ``--parts``
choose what runs, and ``--transaction-model`` the purchase model fitted in every part
(``bgnbd`` by default; ``mbgnbd``, or ``bgcnbd`` for BG/CNBD-k with ``k`` chosen by
profile likelihood, are fitted to the same BG/NBD cohorts and refitted by the shocks'
refits).

Examples
--------
::

    python benchmarks/bench_coverage.py          # writes benchmarks/output/coverage.md
    python benchmarks/bench_coverage.py --replications 20 --n-draws 200   # quicker
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from clvmodels import (
    BetaGeo,
    BetaGeoCNBD,
    GammaGamma,
    ModifiedBetaGeo,
    calibration_holdout_split,
    customer_lifetime_value,
    load_cdnow,
)
from clvmodels.backtest import TOP_TIER_COLUMNS, backtest_tier_probability
from clvmodels.calibration import tier_calibration, tier_reach_shares
from clvmodels.evaluation import forecast_calibration
from clvmodels.segmentation import DEFAULT_TIERS, segment
from clvmodels.shocks import (
    DEFAULT_REFITS,
    CommonShocks,
    estimate_common_shocks,
    shocked_total,
)
from clvmodels.simulate import simulate_transactions

HERE = Path(__file__).resolve().parent
BGNBD = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}
LEVEL = 0.9
# The purchase models ``--transaction-model`` offers: each is fitted to the cohorts
# (simulated from the BG/NBD), and refitted by the shocks' default refits.
TRANSACTION_MODELS = {
    "bgnbd": ("BG/NBD", BetaGeo),
    "mbgnbd": ("MBG/NBD", ModifiedBetaGeo),
    "bgcnbd": ("BG/CNBD-k (k by profile likelihood)", BetaGeoCNBD),
}


def _se(share: float, n: int, nominal: float = LEVEL) -> float:
    """Binomial standard error of a share of ``n`` under the nominal level."""
    return float(np.sqrt(nominal * (1 - nominal) / n)) if n else float("nan")


def _one_forecast(
    log, cut, end, weeks, args, seed, *, shocks=True, recalibrate=False, true_shocks=None
):
    """Fit on the log up to ``cut``, forecast to ``end``: calibration, plain and shocked
    totals and the shocks' posterior means; with ``true_shocks`` (sd, lag-one) also the
    default shocked total made with them instead of the estimate."""
    model = TRANSACTION_MODELS[args.transaction_model][1]
    split = calibration_holdout_split(
        log, "customer_id", "date", "amount", calibration_end=cut, observation_end=end,
        regularity=model is BetaGeoCNBD,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tx, spend = model().fit(split), GammaGamma().fit(split)
    forecast = customer_lifetime_value(
        tx, spend, split, horizon=weeks, period="W", discount_rate=0, interval=LEVEL,
        n_draws=args.n_draws, predictive=True, n_futures=args.n_futures, random_state=seed,
        progressbar=False,
    )  # fmt: skip
    realised = split["frequency_holdout"] * split["monetary_value_holdout"]
    cal = forecast_calibration(
        forecast, realised, tier_probability_col=args.tier_column, random_state=seed
    )
    inside_customers = float(
        ((realised >= forecast.table["clv_pred_lower"])
         & (realised <= forecast.table["clv_pred_upper"])).mean()
    )  # fmt: skip
    out = {"cal": cal, "customers": len(split), "inside_customers": inside_customers}
    if recalibrate and args.tier_column in TOP_TIER_COLUMNS and not args.no_recalibration:
        # The tier probabilities recalibrated on the block before the cut, scored on the
        # holdout as the raw ones are.
        check = backtest_tier_probability(
            forecast, log, "customer_id", "date", "amount", calibration_end=cut,
            column=args.tier_column, random_state=seed,
        )  # fmt: skip
        customers = check.apply(segment(forecast, progressbar=False).customers)
        # Reached as forecast_calibration counts it for the raw probabilities.
        hit = tier_reach_shares(realised.to_numpy(dtype=float), [s for _, s in DEFAULT_TIERS])[:, 0]
        out["recalibrated_tiers"] = tier_calibration(
            customers[f"{args.tier_column}_recalibrated"].reindex(realised.index).to_numpy(), hit
        )
        out["recalibration"] = (check.intercept, check.slope)
    if shocks:
        est = estimate_common_shocks(
            tx, log, "customer_id", "date", calibration_end=cut,
            n_simulations=args.n_simulations, trend_absorbed=args.trend_absorbed,
            random_state=seed,
        )  # fmt: skip
        # The default (refits on simulated shocked cohorts) and the level-only multipliers.
        wide = shocked_total(forecast, split, est, n_refits=args.n_refits, random_state=seed)
        level_only = shocked_total(forecast, split, est, n_refits=0, random_state=seed)
        out.update(
            shocked=(float(wide["clv_pred_lower"]), float(wide["clv_pred_upper"])),
            level_only=(float(level_only["clv_pred_lower"]), float(level_only["clv_pred_upper"])),
            estimates={**est.summary()["mean"].to_dict(),
                       "trend_absorbed": est.settings["trend_absorbed"]},
        )
        if true_shocks is not None:
            known = CommonShocks.fixed(
                *true_shocks, step=est.step, time_unit=est.time_unit,
                calibration_weights=est.calibration_weights,
            )  # fmt: skip
            made = shocked_total(forecast, split, known, n_refits=args.n_refits,
                                 random_state=seed)  # fmt: skip
            out["true_shocked"] = (float(made["clv_pred_lower"]), float(made["clv_pred_upper"]))
    return out


def _inside(value, bounds):
    return bool(bounds[0] <= value <= bounds[1])


def _widths_outside(value, bounds):
    lo, hi = bounds
    return 0.0 if lo <= value <= hi else (value - (hi if value > hi else lo)) / (hi - lo)


def _pooled_tier_lines(tables: list[pd.DataFrame]) -> list[str]:
    """Markdown rows of tier-calibration tables pooled over cuts, by probability bin."""
    pooled = pd.concat(tables)
    lines = [
        "| p bin | customer-cuts | mean p | share reached | se | gap |",
        "|---|---|---|---|---|---|",
    ]
    binned = (
        pooled.assign(hits=pooled["share"] * pooled["customers"],
                      psum=pooled["probability"] * pooled["customers"])
        .groupby(["lower", "upper"])[["customers", "hits", "psum"]].sum()
    )  # fmt: skip
    for (lo, hi), b in binned.iterrows():
        p, share = b["psum"] / b["customers"], b["hits"] / b["customers"]
        se = np.sqrt(p * (1 - p) / b["customers"])
        lines.append(f"| {lo:.1f}–{hi:.1f} | {int(b['customers']):,} | {p:.3f} | {share:.3f} "
                     f"| {se:.3f} | {share - p:+.3f} |")  # fmt: skip
    return lines


def cdnow_rolling(args) -> tuple[list[str], pd.DataFrame]:
    log = load_cdnow(sample=args.cdnow_cohort == "sample")
    last = pd.Timestamp("1998-06-30")
    holdout_days = 7 * args.cdnow_holdout
    cuts = []
    cut = pd.Timestamp(args.cdnow_first_cut)
    while cut + pd.Timedelta(days=holdout_days) <= last:
        cuts.append(cut)
        cut += pd.Timedelta(weeks=args.cdnow_step)
    rows, tiers, recalibrated_tiers = [], [], []
    for i, cut in enumerate(cuts):
        end = cut + pd.Timedelta(days=holdout_days)
        r = _one_forecast(log, cut, end, args.cdnow_holdout, args, seed=i, recalibrate=True)
        total = r["cal"].total
        plain = (total["lower"], total["upper"])
        rows.append({
            "cut": cut.date().isoformat(), "realised": total["realised"],
            "plain_lower": plain[0], "plain_upper": plain[1],
            "plain_inside": _inside(total["realised"], plain),
            "shocked_lower": r["shocked"][0], "shocked_upper": r["shocked"][1],
            "shocked_inside": _inside(total["realised"], r["shocked"]),
            "shocked_widths_outside": _widths_outside(total["realised"], r["shocked"]),
            "customers_inside": r["inside_customers"], "customers": r["customers"],
            "sigma": r["estimates"]["sigma"], "phi": r["estimates"]["phi"],
            "tau": r["estimates"]["tau"], "trend_absorbed": r["estimates"]["trend_absorbed"],
        })  # fmt: skip
        tiers.append(r["cal"].tiers)
        if "recalibrated_tiers" in r:
            recalibrated_tiers.append(r["recalibrated_tiers"])
        print(f"  cut {rows[-1]['cut']}: realised {total['realised']:,.0f}, plain "
              f"{plain[0]:,.0f}-{plain[1]:,.0f}, shocked {r['shocked'][0]:,.0f}-"
              f"{r['shocked'][1]:,.0f}", flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    n = len(table)
    n_cust = int(table["customers"].sum())
    cust = float((table["customers_inside"] * table["customers"]).sum() / n_cust)
    lines = [
        f"### CDNOW ({len(log.customer_id.unique()):,} customers), rolling origin: {n} cuts "
        f"every {args.cdnow_step} weeks from "
        f"{cuts[0].date()} to {cuts[-1].date()}, {args.cdnow_holdout}-week holdouts",
        "",
        "| quantity | coverage of the 90% interval | binomial se | n |",
        "|---|---|---|---|",
        f"| customers' realised value | {cust:.1%} | {_se(cust, n_cust):.1%} (customer-cuts) "
        f"| {n_cust:,} |",
        f"| total, customers independent | {table['plain_inside'].mean():.1%} | "
        f"{_se(LEVEL, n):.1%} | {n} |",
        f"| total, with common shocks | {table['shocked_inside'].mean():.1%} | "
        f"{_se(LEVEL, n):.1%} | {n} |",
        "",
        "Per cut (realised total against the 90% intervals; shocks' posterior means):",
        "",
        "| cut | realised | plain interval | with shocks | widths outside | sigma | phi | tau "
        "| trend absorbed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['cut']} | {row['realised']:,.0f} | {row['plain_lower']:,.0f} – "
            f"{row['plain_upper']:,.0f} | {row['shocked_lower']:,.0f} – "
            f"{row['shocked_upper']:,.0f} | {row['shocked_widths_outside']:+.2f} | "
            f"{row['sigma']:.2f} | {row['phi']:.2f} | {row['tau']:.3f} | "
            f"{row['trend_absorbed']:.2f} |"
        )
    lines += [
        "",
        f"Tier probability `{args.tier_column}`: of customer-cuts given about p, the "
        "share whose realised value reached the top 10% (pooled over cuts; se at p):",
        "",
        *_pooled_tier_lines(tiers),
    ]
    if recalibrated_tiers:
        lines += [
            "",
            "The same, recalibrated at each cut on the block before it "
            "(`clvmodels.backtest.backtest_tier_probability`: the models refitted on the "
            "log up to the cut minus the holdout's length, a logistic map from their "
            "probabilities to who reached the top 10% in that block, applied to the "
            "forecast's probabilities):",
            "",
            *_pooled_tier_lines(recalibrated_tiers),
        ]
    return lines, table


def cdnow_issue_holdout(args) -> list[str]:
    log = load_cdnow()
    r = _one_forecast(log, "1997-09-30", "1998-06-30", 39, args, seed=0)
    total = r["cal"].total
    plain = (total["lower"], total["upper"])
    e = r["estimates"]
    return [
        "### CDNOW 1997-09-30 -> 1998-06-30 (39 weeks), as it falls",
        "",
        "| interval (90%) | lower | upper | realised | inside | widths outside |",
        "|---|---|---|---|---|---|",
        f"| customers independent | {plain[0]:,.0f} | {plain[1]:,.0f} | "
        f"{total['realised']:,.0f} | {'yes' if _inside(total['realised'], plain) else 'no'} | "
        f"{_widths_outside(total['realised'], plain):+.2f} |",
        f"| with common shocks | {r['shocked'][0]:,.0f} | {r['shocked'][1]:,.0f} | "
        f"{total['realised']:,.0f} | "
        f"{'yes' if _inside(total['realised'], r['shocked']) else 'no'} | "
        f"{_widths_outside(total['realised'], r['shocked']):+.2f} |",
        "",
        f"Shocks estimated on the calibration log (posterior means): weekly sd "
        f"{e['sigma']:.3f}, lag-one correlation {e['phi']:.2f}, level error sd {e['tau']:.3f}, "
        f"share of a trend the fit absorbs {e['trend_absorbed']:.2f}. "
        f"Customers' 90% coverage: {r['inside_customers']:.1%}.",
    ]


def _shock_settings(text: str) -> list[tuple[float, float]]:
    """``"sd:lag-one,sd:lag-one"`` as pairs of floats."""
    return [tuple(map(float, pair.split(":"))) for pair in text.split(",")]


def _run_jobs(function, jobs: list, workers: int) -> list:
    """``function`` over ``jobs``, in ``workers`` processes when more than one."""
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(function, jobs))
    return [function(job) for job in jobs]


def simulated(args) -> list[str]:
    lines = [
        f"### Simulated cohorts: {args.replications} replications of {args.customers:,} "
        "customers, 39 + 39 weeks, simulated from the BG/NBD + Gamma-Gamma (CDNOW "
        f"estimates), fitted by {TRANSACTION_MODELS[args.transaction_model][0]}",
        "",
        "| weekly log shocks (sd, lag-one) | total, customers independent | total, with "
        "shocks (refits, default) | total, with shocks, level-only | binomial se | width "
        "ratio (default / plain, mean) | customers' coverage | share of a trend the fit "
        "absorbs, mean (sd) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    diagnosis = []
    for sd, phi in _shock_settings(args.shocks):
        jobs = [(args, sd, phi, 1000 + rep) for rep in range(args.replications)]
        table = pd.DataFrame(_run_jobs(_simulated_replication, jobs, args.workers))
        n = len(table)
        lines.append(
            f"| {sd:.1f}, {phi:.1f} | {table['plain_inside'].mean():.1%} | "
            f"{table['shocked_inside'].mean():.1%} | {table['level_only_inside'].mean():.1%} | "
            f"{_se(LEVEL, n):.1%} | "
            f"{table['width_ratio'].mean():.3f} | {table['customers_inside'].mean():.1%} | "
            f"{table['trend_absorbed'].mean():.2f} ({table['trend_absorbed'].std():.2f}) |"
        )
        print("  " + lines[-1], flush=True)
        if args.true_shocks:
            diagnosis.append(_loss_line(sd, phi, table))
    if diagnosis:
        lines += [
            "",
            "Where the default interval's coverage is lost: the same cohorts with the "
            "interval made from the shocks' true (sd, lag-one) instead of their estimate; "
            "misses below / above the estimated interval; the log half-width "
            "(log(upper / lower) / 2) of both intervals across cohorts, mean (sd); and the "
            "coverage if every estimated interval had had the mean log half-width around "
            "its own centre.",
            "",
            "| weekly log shocks (sd, lag-one) | estimated | true | misses below / above "
            "(estimated) | log half-width, estimated | log half-width, true | estimated, "
            "mean half-width |",
            "|---|---|---|---|---|---|---|",
            *diagnosis,
        ]
    return lines


def _loss_line(sd: float, phi: float, table: pd.DataFrame) -> str:
    """A row of the table of where the default interval's coverage is lost."""
    realised = np.log(table["realised"].to_numpy())

    def logs(name):
        bounds = np.array(table[name].tolist())
        return np.log(bounds[:, 0]), np.log(bounds[:, 1])

    low, high = logs("shocked")
    true_low, true_high = logs("true_shocked")
    half, true_half = (high - low) / 2, (true_high - true_low) / 2
    centre = (high + low) / 2
    return (
        f"| {sd:.1f}, {phi:.1f} | {table['shocked_inside'].mean():.1%} | "
        f"{table['true_shocked_inside'].mean():.1%} | {np.mean(realised < low):.1%} / "
        f"{np.mean(realised > high):.1%} | {half.mean():.3f} ({half.std():.3f}) | "
        f"{true_half.mean():.3f} ({true_half.std():.3f}) | "
        f"{np.mean(np.abs(realised - centre) <= half.mean()):.1%} |"
    )


def _simulated_replication(job) -> dict:
    """One simulated cohort of :func:`simulated`: inside or not, width ratio."""
    args, sd, phi, seed = job
    log = simulate_transactions(args.customers, BGNBD, SPEND, start="1997-01-01",
                                shock_sd=sd, shock_persistence=phi,
                                random_state=seed)  # fmt: skip
    r = _one_forecast(log, "1997-09-30", "1998-06-29", 39, args, seed=seed,
                      true_shocks=(sd, phi) if args.true_shocks else None)  # fmt: skip
    total = r["cal"].total
    plain = (total["lower"], total["upper"])
    out = {
        "plain_inside": _inside(total["realised"], plain),
        "shocked_inside": _inside(total["realised"], r["shocked"]),
        "level_only_inside": _inside(total["realised"], r["level_only"]),
        "width_ratio": (r["shocked"][1] - r["shocked"][0]) / (plain[1] - plain[0]),
        "customers_inside": r["inside_customers"],
        "realised": total["realised"],
        "shocked": r["shocked"],
        "trend_absorbed": r["estimates"]["trend_absorbed"],
    }
    if "true_shocked" in r:
        out["true_shocked"] = r["true_shocked"]
        out["true_shocked_inside"] = _inside(total["realised"], r["true_shocked"])
    return out


def _tier_replication(job) -> pd.DataFrame:
    """One simulated cohort of :func:`simulated_tiers`: its tier-calibration table."""
    args, sd, phi, seed = job
    log = simulate_transactions(args.tier_customers, BGNBD, SPEND, start="1997-01-01",
                                shock_sd=sd, shock_persistence=phi,
                                random_state=seed)  # fmt: skip
    end = pd.Timestamp("1997-09-30") + pd.Timedelta(weeks=args.cdnow_holdout)
    r = _one_forecast(log, "1997-09-30", end, args.cdnow_holdout, args, seed=seed,
                      shocks=False)  # fmt: skip
    return r["cal"].tiers


def simulated_tiers(args) -> list[str]:
    """Tier-probability calibration on cohorts simulated from the model itself."""
    lines = []
    for sd, phi in _shock_settings(args.tier_shocks):
        jobs = [(args, sd, phi, 500 + rep) for rep in range(args.tier_replications)]
        tables = _run_jobs(_tier_replication, jobs, args.workers)
        lines += [
            f"### Tier probability `{args.tier_column}` on simulated cohorts: "
            f"{args.tier_replications} of {args.tier_customers:,} customers (BG/NBD + "
            f"Gamma-Gamma, CDNOW estimates), {args.cdnow_holdout}-week holdouts, weekly "
            f"log shocks sd {sd:.1f}, lag-one {phi:.1f}",
            "",
            *_pooled_tier_lines(tables),
            "",
        ]
        print("\n".join(lines[-14:]), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--customers", type=int, default=2357)
    parser.add_argument("--n-draws", type=int, default=500)
    parser.add_argument("--n-futures", type=int, default=None,
                        help="simulated futures per customer (default: one per draw)")
    parser.add_argument("--n-simulations", type=int, default=100)
    parser.add_argument("--cdnow-first-cut", default="1997-06-03")
    parser.add_argument("--cdnow-step", type=int, default=4)
    parser.add_argument("--cdnow-holdout", type=int, default=13)
    parser.add_argument("--no-recalibration", action="store_true",
                        help="skip the tier probabilities recalibrated on a backtest")
    parser.add_argument("--cdnow-cohort", choices=("full", "sample"), default="full",
                        help="the rolling origin's CDNOW cohort: all 23,570 customers or "
                             "the 1/10 sample (the issue's holdout always uses the sample)")
    parser.add_argument("--tier-column", default="top_tier_probability_realised")
    parser.add_argument("--n-refits", type=int, default=None,
                        help="refits per shocked total (default: shocked_total's)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the simulated cohorts")
    parser.add_argument("--shocks", default="0.0:0.0,0.2:0.5,0.3:0.7",
                        help="simulated weekly log shocks, sd:lag-one pairs")
    parser.add_argument("--trend-absorbed", type=float, default=None,
                        help="share of a linear trend in the shocks that the fit absorbs "
                             "(estimate_common_shocks(trend_absorbed=); default: measured; "
                             "0 integrates the level alone out of the residuals, 1 the "
                             "trend as well)")
    parser.add_argument("--true-shocks", action="store_true",
                        help="simulated cohorts: also the default interval made with the "
                             "shocks' true (sd, lag-one), and where coverage is lost")
    parser.add_argument("--parts", default="rolling,issue,simulated,tiers",
                        help="comma-separated parts to run")
    parser.add_argument("--tier-replications", type=int, default=60)
    parser.add_argument("--tier-customers", type=int, default=2357)
    parser.add_argument("--tier-shocks", default="0.0:0.0,0.3:0.5",
                        help="weekly log shocks of the tier part's cohorts, sd:lag-one pairs")
    parser.add_argument("--transaction-model", choices=sorted(TRANSACTION_MODELS),
                        default="bgnbd", help="purchase model fitted (and refitted)")
    parser.add_argument("--out", type=Path, default=HERE / "output" / "coverage.md")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    t0 = time.perf_counter()
    rolling = issue = sims = tiers = []
    if "rolling" in parts:
        print("CDNOW, rolling origin", flush=True)
        rolling, _ = cdnow_rolling(args)
    if "issue" in parts:
        print("CDNOW, the issue's holdout", flush=True)
        issue = cdnow_issue_holdout(args)
    if "simulated" in parts:
        print("Simulated cohorts", flush=True)
        sims = simulated(args)
    if "tiers" in parts:
        print("Tier probabilities on simulated cohorts", flush=True)
        tiers = simulated_tiers(args)
    load = os.getloadavg()[0]
    futures = "" if args.n_futures is None else f" ({args.n_futures} futures per customer)"
    head = [
        "## Coverage (`bench_coverage.py`)",
        "",
        f"{TRANSACTION_MODELS[args.transaction_model][0]} + Gamma-Gamma, 90% intervals "
        f"from {args.n_draws} draws{futures}; shocks from "
        f"{args.n_simulations} simulated cohorts per estimate and "
        f"{args.n_refits or DEFAULT_REFITS} refits on simulated shocked cohorts per total. "
        f"{time.perf_counter() - t0:.0f} s on this machine, load average {load:.1f}.",
        "",
    ]
    text = "\n".join(head + rolling + [""] + issue + [""] + sims + [""] + tiers) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
