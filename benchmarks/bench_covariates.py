"""Maximum-likelihood fits with customer covariates: 1M customers, 3 covariates.

The target of issue 14: a BG/NBD (and a Pareto/NBD) with three covariates on both the
purchase and the dropout process fits one million customers in under 10 seconds.
Customers are simulated with the CDNOW estimates and known coefficients, acquired over
12 weeks and observed for 27-39 weeks at daily resolution (recency in whole days), with

* ``channel``: categorical, three levels (``email``, the reference, ``search``,
  ``social``), so two design columns;
* ``treated``: 0/1 (a marketing treatment);
* ``age``: a whole number of years, 18 to 80.

Identical (frequency, recency, T, covariates) rows are compressed into weighted rows
before the fit, as the engine does. The same customers are fitted without covariates
in the same run, for scale. The peer: lifetimes has no covariates; pymc-marketing's
``BetaGeoModel`` takes them (numeric columns only, so it gets the indicator columns,
and separate dropout coefficients for ``a`` and ``b``), and its ``fit(method="map")``
(the posterior mode, compilation included) is timed beside our BG/NBD fit on the same
``--peer-size`` customers (default 20,000: its per-customer graph makes a million out
of reach). Each figure is the median of ``--repeats`` fits; the recovered
coefficients are checked against the truth.

Usage::

    python benchmarks/bench_covariates.py                  # 1M customers
    python benchmarks/bench_covariates.py --sizes 100000
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_mle import CDNOW_BGNBD, CDNOW_PNBD, median_time  # the script's own folder

from clvmodels import BetaGeo, ParetoNBD
from clvmodels.simulate import simulate_bgnbd, simulate_pareto_nbd

COLUMNS = ["channel", "treated", "age"]
TRUE = {
    "purchase:channel[search]": 0.3, "purchase:channel[social]": -0.2,
    "purchase:treated": 0.25, "purchase:age": 0.01,
    "dropout:channel[search]": -0.3, "dropout:channel[social]": 0.2,
    "dropout:treated": 0.2, "dropout:age": -0.005,
}


def covariates(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "channel": rng.choice(["email", "search", "social"], size=n, p=[0.5, 0.3, 0.2]),
        "treated": rng.integers(0, 2, n),
        "age": rng.integers(18, 81, n),
    })


def linear_predictor(frame: pd.DataFrame, role: str) -> np.ndarray:
    """gamma' z of each customer; age enters centred at 45, so the base parameters are
    CDNOW's for a 45-year-old (the fitted base parameters are those of age 0; the
    coefficients are the same either way)."""
    return (
        TRUE[f"{role}:channel[search]"] * (frame["channel"] == "search").to_numpy()
        + TRUE[f"{role}:channel[social]"] * (frame["channel"] == "social").to_numpy()
        + TRUE[f"{role}:treated"] * frame["treated"].to_numpy()
        + TRUE[f"{role}:age"] * (frame["age"].to_numpy() - 45.0)
    )


def simulated(model: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Customers of ``model`` ("bgnbd" or "pnbd") whose parameters follow the covariates
    (CLVTools' signs: purchase divides alpha, dropout multiplies a and b / beta)."""
    rng = np.random.default_rng(seed)
    z = covariates(n, rng)
    eta_p, eta_d = linear_predictor(z, "purchase"), linear_predictor(z, "dropout")
    T = rng.integers(27 * 7, 39 * 7 + 1, n) / 7.0
    if model == "bgnbd":
        p = CDNOW_BGNBD
        frame = simulate_bgnbd(n, p["r"], p["alpha"] * np.exp(-eta_p), p["a"] * np.exp(eta_d),
                               p["b"] * np.exp(eta_d), T=T, random_state=rng)
    else:
        p = CDNOW_PNBD
        frame = simulate_pareto_nbd(n, p["r"], p["alpha"] * np.exp(-eta_p), p["s"],
                                    p["beta"] * np.exp(-eta_d), T=T, random_state=rng)
    frame["recency"] = np.minimum(np.round(frame["recency"] * 7.0) / 7.0, frame["T"])
    return pd.concat([frame.reset_index(drop=True), z], axis=1)


def bench(model: str, n: int, repeats: int) -> dict[str, Any]:
    cls = BetaGeo if model == "bgnbd" else ParetoNBD
    data = simulated(model, n)
    settings = {"purchase_covariates": COLUMNS, "dropout_covariates": COLUMNS}
    cov_seconds, fitted = median_time(lambda: cls(**settings).fit(data), repeats)
    base_seconds, _ = median_time(lambda: cls().fit(data), repeats)
    rows = data[["frequency", "recency", "T", *COLUMNS]].drop_duplicates()
    table = fitted.summary(interval=0.95)
    return {
        "model": cls.__name__,
        "customers": n,
        "covariates": len(COLUMNS),
        "coefficients": len(TRUE),
        "distinct_rows": len(rows),
        "fit_with_covariates_s": round(cov_seconds, 2),
        "fit_without_covariates_s": round(base_seconds, 2),
        "coefficients_in_95%_intervals": int(sum(
            table.loc[k, "lower 95%"] < v < table.loc[k, "upper 95%"] for k, v in TRUE.items()
        )),
        "max_abs_error": round(float(max(abs(table.loc[k, "estimate"] - v)
                                         for k, v in TRUE.items())), 4),
    }


def bench_peer(n: int) -> dict[str, Any]:
    """pymc-marketing's BetaGeoModel MAP fit beside ours, on the same customers."""
    import warnings

    from pymc_marketing.clv import BetaGeoModel

    data = simulated("bgnbd", n)
    design = data[["frequency", "recency", "T"]].assign(
        customer_id=np.arange(n),
        channel_search=(data["channel"] == "search").astype(float),
        channel_social=(data["channel"] == "social").astype(float),
        treated=data["treated"].astype(float), age=data["age"].astype(float),
    )
    names = ["channel_search", "channel_social", "treated", "age"]
    peer = BetaGeoModel(data=design, model_config={"purchase_covariate_cols": names,
                                                   "dropout_covariate_cols": names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer_seconds, _ = median_time(lambda: peer.fit(method="map", progressbar=False), 1)
    settings = {"purchase_covariates": COLUMNS, "dropout_covariates": COLUMNS}
    ours, _ = median_time(lambda: BetaGeo(**settings).fit(data), 3)
    return {"customers": n, "clvmodels_s": round(ours, 2),
            "pymc_marketing_map_s": round(peer_seconds, 2),
            "ratio": round(peer_seconds / ours, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--models", nargs="*", default=["bgnbd", "pnbd"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-size", type=int, default=20_000,
                        help="customers for the pymc-marketing comparison (0: none)")
    parser.add_argument("--output", type=Path,
                        default=Path("benchmarks/output/bench_covariates.json"))
    args = parser.parse_args()
    results = [bench(m, n, args.repeats) for n in args.sizes for m in args.models]
    peer = [bench_peer(args.peer_size)] if args.peer_size else []
    load = os.getloadavg()
    print(pd.DataFrame(results).to_string(index=False))
    if peer:
        print("BG/NBD with the same covariates vs pymc-marketing BetaGeoModel (MAP):")
        print(pd.DataFrame(peer).to_string(index=False))
    print(f"load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} CPUs")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"results": results, "peer": peer, "load": load}, indent=2))


if __name__ == "__main__":
    main()
