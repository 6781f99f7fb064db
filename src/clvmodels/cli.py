"""The ``clvmodels`` command line.

``clvmodels demo`` runs the whole flow on the bundled CDNOW data;
``clvmodels forecast`` turns a transaction file into a per-customer forecast file.
Errors in the input end the command with one line on stderr and a non-zero exit
code, and never leave a partial output file behind.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from clvmodels._io import write_atomically

app = typer.Typer(
    name="clvmodels",
    help="Customer lifetime value: BG/NBD, Gamma-Gamma, CLV with intervals, segments.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_SUFFIXES = {".csv", ".parquet", ".pq"}


class CLIError(Exception):
    """An error the user can fix; printed as one line."""


def _one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into a one-line message and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from clvmodels.errors import ConvergenceError

        try:
            return func(*args, **kwargs)
        except (CLIError, ValueError, FileNotFoundError, ConvergenceError, KeyError) as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            typer.echo(f"clvmodels: error: {message}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _check_suffix(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise CLIError(f"{what} {path} must end in .csv or .parquet, not {suffix or 'nothing'!r}")
    return "parquet" if suffix in {".parquet", ".pq"} else "csv"


def read_transactions(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet transaction file, chosen by suffix."""
    kind = _check_suffix(path, "transactions file")
    if not path.exists():
        raise CLIError(f"transactions file {path} does not exist")
    if kind == "parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def write_table_atomically(frame: pd.DataFrame, path: Path) -> Path:
    """Write CSV or Parquet through a temporary file and a rename.

    A reader never sees a half-written file, and a failure leaves nothing behind.
    """
    kind = _check_suffix(path, "output file")

    def write(tmp: Path) -> None:
        if kind == "parquet":
            frame.to_parquet(tmp)
        else:
            frame.to_csv(tmp)

    return write_atomically(path, write)


def run_forecast(
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    date_col: str,
    value_col: str,
    observation_end: str | None = None,
    horizon_months: int = 12,
    discount_rate: float = 0.01,
    interval: float = 0.9,
    draws: int = 1000,
    predictive: bool = False,
    segments: bool = False,
    random_state: int | None = 0,
    progressbar: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The main job: summary, both fits, CLV with intervals, optional tiers.

    Returns the per-customer table and a dict with the fitted models and forecast.
    """
    from clvmodels.clv import customer_lifetime_value
    from clvmodels.data import rfm_summary
    from clvmodels.models.beta_geo import BetaGeo
    from clvmodels.models.gamma_gamma import GammaGamma

    for name, col in (("customer", customer_col), ("date", date_col), ("value", value_col)):
        if col not in transactions.columns:
            raise CLIError(
                f"{name} column {col!r} is not in the transactions file; "
                f"columns are {list(transactions.columns)}"
            )
    summary = rfm_summary(
        transactions, customer_col, date_col, value_col, observation_end=observation_end
    )
    transaction_model = BetaGeo().fit(summary)
    spend_model = GammaGamma().fit(summary)
    forecast = customer_lifetime_value(
        transaction_model,
        spend_model,
        summary,
        horizon=horizon_months,
        period="M",
        discount_rate=discount_rate,
        interval=interval,
        n_draws=draws,
        predictive=predictive,
        random_state=random_state,
        progressbar=progressbar,
    )
    table = summary.join(forecast.table.drop(columns=summary.columns, errors="ignore"))
    result: dict[str, Any] = {
        "summary": summary,
        "transaction_model": transaction_model,
        "spend_model": spend_model,
        "forecast": forecast,
    }
    if segments:
        from clvmodels.segmentation import segment

        segmentation = segment(forecast, progressbar=progressbar)
        table = table.join(segmentation.customers.drop(columns=table.columns, errors="ignore"))
        result["segmentation"] = segmentation
    return table, result


@app.command()
@_one_line_errors
def forecast(
    transactions: Annotated[Path, typer.Option(help="Transaction log, .csv or .parquet")],
    customer_col: Annotated[str, typer.Option(help="Customer id column")],
    date_col: Annotated[str, typer.Option(help="Purchase date column")],
    value_col: Annotated[str, typer.Option(help="Purchase value column")],
    output: Annotated[Path, typer.Option(help="Per-customer forecast, .csv or .parquet")],
    observation_end: Annotated[
        str | None, typer.Option(help="End of observation (default: last date in the data)")
    ] = None,
    horizon_months: Annotated[int, typer.Option(help="Forecast horizon in months")] = 12,
    discount_rate: Annotated[float, typer.Option(help="Discount rate per month")] = 0.01,
    interval: Annotated[float, typer.Option(help="Interval level, in (0, 1)")] = 0.9,
    draws: Annotated[int, typer.Option(help="Parameter draws for the intervals")] = 1000,
    predictive: Annotated[
        bool, typer.Option(help="Also give predictive intervals of realised value")
    ] = False,
    segments: Annotated[bool, typer.Option(help="Add value tiers with probabilities")] = False,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress or summary output")] = False,
) -> None:
    """Forecast discounted CLV per customer from a transaction file."""
    if output.exists() and output.is_dir():
        raise CLIError(f"output {output} is a directory; give a file name")
    _check_suffix(output, "output file")
    frame = read_transactions(transactions)
    table, result = run_forecast(
        frame,
        customer_col=customer_col,
        date_col=date_col,
        value_col=value_col,
        observation_end=observation_end,
        horizon_months=horizon_months,
        discount_rate=discount_rate,
        interval=interval,
        draws=draws,
        predictive=predictive,
        segments=segments,
        random_state=seed,
        progressbar=not quiet,
    )
    write_table_atomically(table, output)
    if not quiet:
        typer.echo(f"Portfolio CLV: {_fmt_total(result['forecast'].total())}")
        if "segmentation" in result:
            typer.echo(_tier_table(result["segmentation"].tiers).to_string())
        typer.echo(f"Wrote {len(table):,} customers to {output}")


@app.command()
@_one_line_errors
def report(
    transactions: Annotated[Path, typer.Option(help="Transaction log, .csv or .parquet")],
    customer_col: Annotated[str, typer.Option(help="Customer id column")],
    date_col: Annotated[str, typer.Option(help="Purchase date column")],
    value_col: Annotated[str, typer.Option(help="Purchase value column")],
    calibration_end: Annotated[str, typer.Option(help="End of the calibration period")],
    output: Annotated[Path, typer.Option(help="HTML file to write")] = Path("report.html"),
    observation_end: Annotated[
        str | None, typer.Option(help="End of the holdout period (default: last date)")
    ] = None,
    group_col: Annotated[
        str | None, typer.Option(help="Group column for the hierarchical Bayesian model")
    ] = None,
    draws: Annotated[int, typer.Option(help="Parameter draws for the CLV intervals")] = 1000,
    mcmc_draws: Annotated[
        int, typer.Option(help="Posterior draws per chain for the Bayesian models (0: none)")
    ] = 500,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress output")] = False,
) -> None:
    """Compare models on a holdout period and write a self-contained HTML report."""
    from clvmodels.report import build_report

    if output.suffix.lower() not in {".html", ".htm"}:
        raise CLIError(f"output {output} must end in .html")
    frame = read_transactions(transactions)
    path = build_report(
        frame,
        customer_col,
        date_col,
        value_col,
        calibration_end,
        output,
        observation_end=observation_end,
        group_col=group_col,
        mcmc_draws=mcmc_draws,
        n_draws=draws,
        random_state=seed,
        command="clvmodels " + " ".join(sys.argv[1:]),
        progressbar=not quiet,
    )
    if not quiet:
        typer.echo(f"Wrote the report to {path}")


@app.command()
@_one_line_errors
def demo(
    output_dir: Annotated[Path, typer.Option(help="Folder for the output files")] = Path(
        "clvmodels-demo"
    ),
    draws: Annotated[int, typer.Option(help="Parameter draws for the intervals")] = 1000,
    mcmc_draws: Annotated[
        int, typer.Option(help="Posterior draws per chain for the report's Bayesian model")
    ] = 500,
    quiet: Annotated[bool, typer.Option(help="Less output")] = False,
) -> None:
    """Run the main job on the bundled CDNOW sample and write the results.

    The forecast uses all of the sample's history; the report compares the models
    on the 39-week holdout that follows the calibration period of Fader, Hardie &
    Lee (2005).
    """
    from rich.console import Console

    from clvmodels.datasets import load_cdnow

    console = Console(quiet=quiet)
    transactions = load_cdnow(sample=True)
    console.print(
        f"[bold]CDNOW sample[/bold]: {len(transactions):,} transactions of "
        f"{transactions['customer_id'].nunique():,} customers, "
        f"{transactions['date'].min():%Y-%m-%d} to {transactions['date'].max():%Y-%m-%d}"
    )
    table, result = run_forecast(
        transactions,
        customer_col="customer_id",
        date_col="date",
        value_col="amount",
        draws=draws,
        predictive=True,
        segments=True,
        progressbar=not quiet,
    )
    for key in ("transaction_model", "spend_model"):
        model = result[key]
        console.print(_rich_table(model.summary().rename_axis("parameter"),
                                  f"{type(model).__name__} parameters (95% intervals)"))

    forecast = result["forecast"]
    console.print(
        f"Portfolio CLV over 12 months at 1%/month: [bold]{_fmt_total(forecast.total())}[/bold]"
    )
    if "segmentation" in result:
        console.print(_rich_table(
            _tier_table(result["segmentation"].tiers),
            "Value tiers (90% intervals; tier probability = share of parameter draws "
            "that keep a customer in its tier)",
        ))

    top = table.sort_values("clv", ascending=False).head(10)
    shown = pd.DataFrame({
        "x": top["frequency"],
        "t_x (wk)": top["recency"].map(lambda v: f"{v:.1f}"),
        "T (wk)": top["T"].map(lambda v: f"{v:.1f}"),
        "P(alive)": top["probability_alive"].map(lambda v: f"{v:.3f}"),
        "purchases": top["expected_purchases"].map(lambda v: f"{v:.2f}"),
        "spend": top["expected_spend"].map(lambda v: f"{v:.2f}"),
        "CLV [90% interval]": [
            f"{c:,.0f} [{lo:,.0f}, {hi:,.0f}]"
            for c, lo, hi in zip(top["clv"], top["clv_lower"], top["clv_upper"], strict=True)
        ],
        "tier": top.get("tier", pd.Series("", index=top.index)),
    })
    console.print(_rich_table(shown, "Top 10 customers by CLV"))

    output_dir.mkdir(parents=True, exist_ok=True)
    out = write_table_atomically(table, output_dir / "customers.csv")
    result["transaction_model"].save(output_dir / "bgnbd.json")
    result["spend_model"].save(output_dir / "gamma_gamma.json")
    console.print(f"Wrote the per-customer table to {out} and the models to {output_dir}/")

    from clvmodels.report import build_report

    console.print("Building the model comparison report (calibration to 1997-09-30) ...")
    report_path = build_report(
        transactions,
        "customer_id",
        "date",
        "amount",
        "1997-09-30",
        output_dir / "report.html",
        observation_end="1998-06-30",
        mcmc_draws=mcmc_draws,
        n_draws=draws,
        currency="USD",
        command="clvmodels demo",
        progressbar=not quiet,
    )
    console.print(f"Wrote the report to {report_path}")


def _rich_table(frame: pd.DataFrame, title: str) -> Any:
    """A DataFrame as a rich table: index first, numbers right-aligned."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column(str(frame.index.name or ""), justify="left")
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    for idx, row in frame.iterrows():
        cells = [v if isinstance(v, str) else f"{v:.4g}" for v in row]
        table.add_row(str(idx), *cells)
    return table


_TIER_COLUMNS = ("customers", "clv_total", "clv_total_lower", "clv_total_upper",
                 "share_of_value", "mean_tier_probability")


def _tier_table(tiers: pd.DataFrame) -> pd.DataFrame:
    shown = tiers[[c for c in _TIER_COLUMNS if c in tiers.columns]].copy()
    for col in shown.columns:
        if col.startswith("clv"):
            shown[col] = shown[col].map(lambda v: f"{v:,.0f}")
        elif col != "customers":
            shown[col] = shown[col].map(lambda v: f"{v:.3f}")
    return shown


def _fmt_total(total: Any) -> str:
    if isinstance(total, dict | pd.Series):
        get = total.get
        return f"{get('clv'):,.0f} (interval {get('clv_lower'):,.0f} to {get('clv_upper'):,.0f})"
    return f"{float(total):,.0f}"


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
