"""The ``clvmodels`` command line.

``clvmodels forecast`` turns a transaction log into a per-customer forecast file,
``clvmodels report`` into an HTML model-comparison report (by default of the whole
family: every maximum-likelihood transaction model with Gamma-Gamma, the best on the
holdout forecasting), and ``clvmodels demo`` runs both on the bundled CDNOW data;
``clvmodels models`` lists the models that ``--model`` and ``--spend-model`` accept
(every registered model, by name). Every command parses its arguments into
:class:`clvmodels.pipeline.PipelineSettings` and runs the one pipeline
(:func:`clvmodels.pipeline.run_pipeline`); transaction files are read as
:func:`clvmodels.rfm_summary` reads them (out of core, in DuckDB).

Covariates: ``--customer-data FILE`` (.csv or .parquet, one row per customer with the
``--customer-col`` column) is joined onto every summary, and ``--purchase-covariates
a,b``, ``--dropout-covariates c`` and ``--spend-covariates d`` name its columns that
scale the transaction models' purchase and dropout processes and the spend model
(``ParetoNBD(purchase_covariates=["a", "b"])`` and so on in Python). A model that takes
no such covariates, or a column the file lacks, is refused before any data is read;
``report`` needs ``--model`` with them (the family's (M)BG/CNBD-k take none).

Failures end the command with one line on stderr (``clvmodels: error: ...``), never a
traceback, and never leave a partial output file behind; an existing output file is
replaced only by a complete new one. Exit codes:

====  =====================================================================================
0     done
1     an internal error (a bug, or out of memory): the line names the exception; set
      ``CLVMODELS_TRACEBACK=1`` to see the traceback
2     bad arguments or settings, bad input data, a file that cannot be read or written
      (missing, a folder, permission denied, disk full, ...), a model file that cannot be
      loaded, or a model that cannot be fitted to the data
130   interrupted (Ctrl-C)
143   terminated (SIGTERM; 129 for SIGHUP): the output file being written is removed
====  =====================================================================================
"""

from __future__ import annotations

import glob
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn

import pandas as pd
import typer
from typer.core import TyperGroup

from clvmodels._io import describe_os_error, removing_temporary_files_on_signals, write_atomically
from clvmodels.pipeline import (
    DEFAULT_SPEND_MODEL,
    DEFAULT_TRANSACTION_MODEL,
    PipelineResult,
    PipelineSettings,
    available_models,
    make_model,
    model_kind,
    run_pipeline,
)
from clvmodels.units import unit_name

try:  # typer 0.20 and later carry their own copy of click
    from typer._click.exceptions import UsageError as _UsageError
except ImportError:  # pragma: no cover - older typer, on click
    from click.exceptions import UsageError as _UsageError

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: Set (to anything) to see the traceback of an internal error.
TRACEBACK_VARIABLE = "CLVMODELS_TRACEBACK"


class CLIError(Exception):
    """An error the user can fix; printed as one line."""


def _fail(message: str, code: int) -> NoReturn:
    lines = message.strip().splitlines()
    typer.echo(f"clvmodels: error: {lines[0] if lines else 'failed'}", err=True)
    raise typer.Exit(code=code)


def _failure(err: Exception) -> tuple[int, str]:
    """The exit code and the one-line message for an exception a command raised."""
    from clvmodels.errors import ConvergenceError

    text = str(err).strip()
    if isinstance(err, OSError):
        return EXIT_USAGE, describe_os_error(err)
    # DuckDB's own errors (a file it cannot parse) are the user's to fix too.
    if isinstance(err, CLIError | ValueError | ConvergenceError | KeyError) or type(
        err
    ).__module__.startswith("duckdb"):
        return EXIT_USAGE, text or type(err).__name__
    if isinstance(err, MemoryError):
        return EXIT_INTERNAL, f"out of memory ({type(err).__name__}: {text})"
    first = text.splitlines()[0] if text else ""
    return EXIT_INTERNAL, (
        f"internal error, {type(err).__name__}: {first} (please report it; set "
        f"{TRACEBACK_VARIABLE}=1 to see where it happened)"
    )


def _one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure into a one-line message and its exit code (see the module)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as err:
            code, message = _failure(err)
            if code == EXIT_INTERNAL and os.environ.get(TRACEBACK_VARIABLE):
                raise
            _fail(message, code)

    return wrapper


@contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    """Argument errors (a value that is not a number, an unknown option) in one line."""
    try:
        yield
    except _UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # shows the help
            raise
        hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
        _fail(err.format_message() + hint, EXIT_USAGE)


class _Commands(TyperGroup):
    """The command group: argument errors in one line, Ctrl-C exits 130, and SIGTERM
    (or SIGHUP) removes the output being written before the command exits 143 (129)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors_in_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        try:
            with _usage_errors_in_one_line(), removing_temporary_files_on_signals():
                return super().invoke(ctx)
        except KeyboardInterrupt:
            raise typer.Exit(code=EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="clvmodels",
    help="Customer lifetime value: BG/NBD, Gamma-Gamma, CLV with intervals, segments.",
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _table_kind(path: Path, what: str) -> str:
    kind = _TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CLIError(
            f"{what} {path} must end in .csv or .parquet, not {path.suffix.lower() or 'nothing'!r}"
        )
    return kind


def write_table_atomically(frame: pd.DataFrame, path: Path) -> Path:
    """Write CSV or Parquet (chosen by suffix) through a temporary file and a rename.

    A reader never sees a half-written file, and a failure leaves nothing behind.
    """
    kind = _table_kind(path, "output file")

    def write(tmp: Path) -> None:
        if kind == "parquet":
            frame.to_parquet(tmp)
        else:
            frame.to_csv(tmp)

    return write_atomically(path, write)


def _check_output(path: Path, suffixes: tuple[str, ...] | None = None) -> None:
    """Refuse an output that cannot be written, before any work is done."""
    if path.is_dir():
        raise CLIError(f"output {path} is a directory; give a file name")
    if suffixes is None:
        _table_kind(path, "output file")
    elif path.suffix.lower() not in suffixes:
        raise CLIError(f"output {path} must end in {' or '.join(suffixes)}")
    _check_folder(path, "output")


def _check_folder(path: Path, what: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we may write in."""
    folder = next(parent for parent in path.absolute().parents if parent.exists())
    shown = next((p for p in path.parents if p.absolute() == folder), folder)
    if not folder.is_dir():
        raise CLIError(f"cannot write {what} {path}: {shown} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write {what} {path}: no permission to write in folder {shown}")


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Name the file in the error when writing it fails (disk full, I/O error, ...)."""
    try:
        yield
    except OSError as err:
        raise CLIError(f"cannot write {path}: {describe_os_error(err)}") from err


def _source(transactions: str) -> str:
    """The transactions argument, checked: a file, a folder, or a glob that matches."""
    if not glob.has_magic(transactions) and not Path(transactions).exists():
        raise CLIError(f"transactions file {transactions} does not exist")
    return transactions


def _horizon(horizon: int, horizon_months: int | None, period: str) -> int:
    """``--horizon``, or the old spelling ``--horizon-months`` (months only)."""
    if horizon_months is None:
        return horizon
    if period != "M":
        raise CLIError("--horizon-months counts months: use --horizon with --period")
    return horizon_months


# Options shared by the commands, named as in PipelineSettings.
Transactions = Annotated[
    str,
    typer.Option(
        help="Transaction log: a .csv or .parquet file (.gz/.zst too), a folder or a glob "
        "of them; read out of core by DuckDB"
    ),
]
CustomerCol = Annotated[str, typer.Option(help="Customer id column")]
DateCol = Annotated[str, typer.Option(help="Purchase date column")]
ValueCol = Annotated[str, typer.Option(help="Purchase value column")]
GroupCol = Annotated[
    str | None,
    typer.Option(help="Per-customer group column (models that take one get parameters per group)"),
]
DateFormat = Annotated[
    str | None, typer.Option(help="strftime format of text dates, e.g. %Y%m%d (default: ISO)")
]
Freq = Annotated[
    str, typer.Option(help="Purchases in one such period count once: h, D, W, M, Q, Y")
]
TimeUnit = Annotated[str, typer.Option(help="Unit of recency and T: h, D, W, M, Y")]
Horizon = Annotated[int, typer.Option(help="Forecast horizon, in periods")]
HorizonMonths = Annotated[
    int | None, typer.Option(hidden=True, help="Old spelling of --horizon (months)")
]
Period = Annotated[
    str, typer.Option(help="Length of a period: D, W, M, Q, Y, or a multiple such as 4W")
]
DiscountRate = Annotated[float, typer.Option(help="Discount rate per period")]
Interval = Annotated[float, typer.Option(help="Interval level, in (0, 1)")]
NDraws = Annotated[
    int, typer.Option("--n-draws", "--draws", help="Parameter draws behind the intervals")
]
RandomState = Annotated[int, typer.Option("--random-state", "--seed", help="Random seed")]
McmcDraws = Annotated[int, typer.Option(help="Posterior draws per chain for Bayesian models")]
McmcTune = Annotated[int, typer.Option(help="Tuning steps per chain for Bayesian models")]
McmcChains = Annotated[int, typer.Option(help="Chains for Bayesian models")]
Quiet = Annotated[bool, typer.Option(help="No progress or summary output")]
CustomerData = Annotated[
    Path | None,
    typer.Option(
        help="Per-customer covariates and attributes: a .csv or .parquet file of one row "
        "per customer, with the --customer-col column; joined onto every summary"
    ),
]
PurchaseCovariates = Annotated[
    str | None,
    typer.Option(
        help="Columns of --customer-data (comma-separated) that scale the purchase process "
        "of the transaction models (BetaGeo, ModifiedBetaGeo, ParetoNBD)"
    ),
]
DropoutCovariates = Annotated[
    str | None,
    typer.Option(
        help="Columns of --customer-data (comma-separated) that scale the dropout process "
        "of the transaction models"
    ),
]
SpendCovariates = Annotated[
    str | None,
    typer.Option(
        help="Columns of --customer-data (comma-separated) that scale the spend model "
        "(GammaGamma, GammaGammaTransactions)"
    ),
]


def _mcmc(draws: int, tune: int, chains: int) -> dict[str, int]:
    return {"draws": draws, "tune": tune, "chains": chains}


#: The covariate options, by the kind of model whose constructor argument they fill.
_COVARIATE_OPTIONS = {
    "transaction": ("purchase_covariates", "dropout_covariates"),
    "spend": ("spend_covariates",),
}


def _option(argument: str) -> str:
    return "--" + argument.replace("_", "-")


class _Covariates:
    """``--customer-data`` and the covariate options, checked against each other."""

    def __init__(self, customer_data: Path | None, customer_col: str,
                 **columns: str | None) -> None:
        self.columns = {
            argument: _column_list(value, _option(argument))
            for argument, value in columns.items() if value is not None
        }
        self.table = None
        if customer_data is None:
            if self.columns:
                raise CLIError(
                    f"{_option(next(iter(self.columns)))} names columns of --customer-data: "
                    "give that file too"
                )
            return
        self.table = _read_customer_data(customer_data, customer_col)
        for argument, names in self.columns.items():
            absent = [c for c in names if c not in self.table.columns]
            if absent:
                raise CLIError(
                    f"{_option(argument)}: customer data {customer_data} has no column(s) "
                    f"{absent}; its columns are "
                    f"{[c for c in self.table.columns if c != customer_col]}"
                )

    def model(self, name: str, kind: str, group_col: str | None) -> Any:
        """The model ``name`` with its covariate arguments (the name itself without)."""
        arguments = {a: self.columns[a] for a in _COVARIATE_OPTIONS[kind] if a in self.columns}
        if not arguments:
            return name
        cls = type(make_model(name, kind=kind))
        accepted = inspect.signature(cls).parameters
        for argument in arguments:
            if argument not in accepted:
                takers = [n for n, c in available_models().items()
                          if argument in inspect.signature(c).parameters]
                raise CLIError(
                    f"{name} takes no covariates for {_option(argument)}; models that do: "
                    f"{', '.join(takers)}"
                )
        if group_col and "group_col" in accepted:
            arguments["group_col"] = group_col
        return cls(**arguments)

    def refuse_with(self, option: str) -> None:
        """Refuse a setting that cannot carry the covariates, naming both options."""
        if self.columns:
            raise CLIError(f"{_option(next(iter(self.columns)))} cannot be used with {option}")


def _column_list(value: str, option: str) -> list[str]:
    names = [part.strip() for part in value.split(",")]
    if not all(names):
        raise CLIError(f"{option} must be column names separated by commas, got {value!r}")
    return names


def _read_customer_data(path: Path, customer_col: str) -> pd.DataFrame:
    """The ``--customer-data`` file, ids read as the transactions' are (int where all are)."""
    kind = _table_kind(path, "customer data")
    if not path.is_file():
        raise CLIError(f"customer data file {path} does not exist")
    table = pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path)
    if customer_col in table.index.names:  # a Parquet file written from an indexed frame
        table = table.reset_index()
    if customer_col not in table.columns:
        raise CLIError(
            f"customer data {path} has no column {customer_col!r} (--customer-col); its "
            f"columns are {list(table.columns)}"
        )
    return table


@app.command()
@_one_line_errors
def forecast(
    transactions: Transactions,
    customer_col: CustomerCol,
    date_col: DateCol,
    value_col: ValueCol,
    output: Annotated[Path, typer.Option(help="Per-customer forecast, .csv or .parquet")],
    observation_end: Annotated[
        str | None, typer.Option(help="End of observation (default: last date in the data)")
    ] = None,
    model: Annotated[
        str, typer.Option(help="Transaction model, by name (see `clvmodels models`)")
    ] = DEFAULT_TRANSACTION_MODEL,
    spend_model: Annotated[
        str, typer.Option(help="Spend model, by name (see `clvmodels models`)")
    ] = DEFAULT_SPEND_MODEL,
    group_col: GroupCol = None,
    horizon: Horizon = 12,
    period: Period = "M",
    discount_rate: DiscountRate = 0.01,
    interval: Interval = 0.9,
    n_draws: NDraws = 1000,
    predictive: Annotated[
        bool, typer.Option(help="Also give predictive intervals of realised value")
    ] = False,
    n_futures: Annotated[
        int | None,
        typer.Option(help="With --predictive: simulated futures per customer (default: one "
                     "per draw); 100 is several times faster, each interval noisier"),
    ] = None,
    segments: Annotated[bool, typer.Option(help="Add value tiers with probabilities")] = False,
    tier_backtest: Annotated[
        bool,
        typer.Option(help="With --predictive and --segments: try the top-tier probabilities "
                     "on the last horizon of the log and add them recalibrated"),
    ] = True,
    common_shocks: Annotated[
        bool,
        typer.Option(help="Measure shocks common to all customers on the log and put them "
                     "into the intervals of the portfolio and tier totals"),
    ] = False,
    random_state: RandomState = 0,
    freq: Freq = "D",
    time_unit: TimeUnit = "W",
    date_format: DateFormat = None,
    mcmc_draws: McmcDraws = 1000,
    mcmc_tune: McmcTune = 1000,
    mcmc_chains: McmcChains = 4,
    horizon_months: HorizonMonths = None,
    customer_data: CustomerData = None,
    purchase_covariates: PurchaseCovariates = None,
    dropout_covariates: DropoutCovariates = None,
    spend_covariates: SpendCovariates = None,
    quiet: Quiet = False,
) -> None:
    """Forecast discounted CLV per customer from a transaction log."""
    _check_output(output)
    covariates = _Covariates(
        customer_data, customer_col, purchase_covariates=purchase_covariates,
        dropout_covariates=dropout_covariates, spend_covariates=spend_covariates,
    )
    settings = PipelineSettings(
        _source(transactions),
        customer_col,
        date_col,
        value_col,
        group_col=group_col,
        customer_data=covariates.table,
        date_format=date_format,
        observation_end=observation_end,
        freq=freq,
        time_unit=time_unit,
        models=(covariates.model(model, "transaction", group_col),
                covariates.model(spend_model, "spend", group_col)),
        fit_options=_mcmc(mcmc_draws, mcmc_tune, mcmc_chains),
        horizon=_horizon(horizon, horizon_months, period),
        period=period,
        discount_rate=discount_rate,
        interval=interval,
        n_draws=n_draws,
        predictive=predictive,
        n_futures=n_futures,
        segments=segments,
        tier_backtest=tier_backtest,
        common_shocks=common_shocks,
        random_state=random_state,
    )
    result = run_pipeline(settings, progressbar=not quiet)
    table = result.customers()
    with _writing(output):
        write_table_atomically(table, output)
    if not quiet:
        typer.echo(f"Portfolio CLV over {settings.describe_horizon()}: "
                   f"{_fmt_total(result.forecast.total())}")
        if (line := _common_shocks_line(result)) is not None:
            typer.echo(line)
        if result.segmentation is not None:
            typer.echo(_tier_title(result))
            typer.echo(_tier_table(result.segmentation.tiers).to_string())
        if (line := _tier_backtest_line(result)) is not None:
            typer.echo(line)
        typer.echo(f"Wrote {len(table):,} customers to {output}")


def _common_shocks_line(result: PipelineResult) -> str | None:
    """The total with common shocks, or why they were not measured, in one line (None
    where they were not asked for)."""
    if result.shock_factors is None:
        note = result.common_shocks_note
        return None if note is None else f"Common shocks not measured: {note}"
    return (
        f"With shocks common to all customers ({result.common_shocks.describe()}; "
        f"{result.shock_factors.method}): {_fmt_total(result.total())}; the tiers' totals "
        "include them"
    )


def _tier_backtest_line(result: PipelineResult) -> str | None:
    """What the tier backtest found, in one line (None where it was not asked for)."""
    check = result.tier_backtest
    if check is None:
        note = result.tier_backtest_note
        return None if note is None else f"Tier backtest not run: {note}"
    return (f"Top-tier probabilities tried on {check.cut} to {check.end} (models refitted "
            f"before it): logistic calibration slope {check.slope:.2f}, intercept "
            f"{check.intercept:+.2f}; recalibrated in "
            f"{check.column}_recalibrated")


def _report_models(
    models: list[str] | None,
    spend_models: list[str] | None,
    covariates: _Covariates,
    group_col: str | None,
) -> dict[str, tuple[Any, Any]] | None:
    """``--model`` / ``--spend-model`` as named pairs (None: the family), each model
    with its covariate arguments."""
    if not models:
        if spend_models:
            raise CLIError("--spend-model needs --model: name the transaction models too")
        covariates.refuse_with("the default family: name the models with --model")
        return None
    spend = spend_models or [DEFAULT_SPEND_MODEL]
    if len(spend) == 1:
        spend = spend * len(models)
    if len(spend) != len(models):
        raise CLIError(
            f"give one --spend-model, or one for each --model ({len(models)}), not {len(spend)}"
        )
    return {
        f"{tx} + {sp}": (covariates.model(tx, "transaction", group_col),
                         covariates.model(sp, "spend", group_col))
        for tx, sp in zip(models, spend, strict=True)
    }


def _forecast_pair(name: str | None, spend_models: list[str] | None) -> str | None:
    """``--forecast-model``: a pair's name, a transaction model's (with the spend model), or
    ``average`` (the model average)."""
    if name is None or " + " in name or name in ("average", "model average"):
        return name
    spend = spend_models[0] if spend_models and len(set(spend_models)) == 1 else None
    return f"{name} + {spend or DEFAULT_SPEND_MODEL}"


@app.command()
@_one_line_errors
def report(
    transactions: Transactions,
    customer_col: CustomerCol,
    date_col: DateCol,
    value_col: ValueCol,
    calibration_end: Annotated[str, typer.Option(help="End of the calibration period")],
    output: Annotated[Path, typer.Option(help="HTML file to write")] = Path("report.html"),
    observation_end: Annotated[
        str | None, typer.Option(help="End of the holdout period (default: last date)")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Transaction model to compare, by name (repeat for several; see `clvmodels "
            "models`). Default: the whole family (every maximum-likelihood transaction model)."
        ),
    ] = None,
    spend_model: Annotated[
        list[str] | None,
        typer.Option(help="Spend model: one for all --model, or one each (default: GammaGamma)"),
    ] = None,
    forecast_model: Annotated[
        str | None,
        typer.Option(
            help="The model that forecasts CLV: a transaction model, 'Model + SpendModel', or "
            "'average' (the models mixed with the comparison's model-average weights). "
            "Default: the best on the holdout, by squared error of value per customer"
        ),
    ] = None,
    bayesian: Annotated[
        bool,
        typer.Option(help="Also compare the Bayesian versions of the family (MCMC: slow)"),
    ] = False,
    group_col: GroupCol = None,
    horizon: Horizon = 12,
    period: Period = "M",
    discount_rate: DiscountRate = 0.01,
    interval: Interval = 0.9,
    n_draws: NDraws = 1000,
    mcmc_draws: Annotated[
        int,
        typer.Option(help="Posterior draws per chain for Bayesian models (0: no --bayesian)"),
    ] = 500,
    mcmc_tune: McmcTune = 500,
    mcmc_chains: McmcChains = 2,
    random_state: RandomState = 0,
    freq: Freq = "D",
    time_unit: TimeUnit = "W",
    date_format: DateFormat = None,
    currency: Annotated[str, typer.Option(help="Currency of the values, for labels")] = "",
    title: Annotated[str | None, typer.Option(help="Report title")] = None,
    common_shocks: Annotated[
        bool,
        typer.Option(help="Put shocks common to all customers, measured on the log, into the "
                     "intervals of the totals (the holdout's, the forecast's and its tiers')"),
    ] = True,
    customer_data: CustomerData = None,
    purchase_covariates: PurchaseCovariates = None,
    dropout_covariates: DropoutCovariates = None,
    spend_covariates: SpendCovariates = None,
    quiet: Quiet = False,
) -> None:
    """Compare models on a holdout period and write a self-contained HTML report."""
    from clvmodels.report import build_report

    _check_output(output, (".html", ".htm"))
    covariates = _Covariates(
        customer_data, customer_col, purchase_covariates=purchase_covariates,
        dropout_covariates=dropout_covariates, spend_covariates=spend_covariates,
    )
    if bayesian:
        covariates.refuse_with("--bayesian (the Bayesian versions take no covariates here)")
    path = build_report(
        _source(transactions),
        customer_col,
        date_col,
        value_col,
        calibration_end,
        output,
        observation_end=observation_end,
        group_col=group_col,
        models=_report_models(model, spend_model, covariates, group_col),
        customer_data=covariates.table,
        forecast_model=_forecast_pair(forecast_model, spend_model),
        bayesian=bayesian,
        mcmc_draws=mcmc_draws,
        mcmc_tune=mcmc_tune,
        mcmc_chains=mcmc_chains,
        horizon=horizon,
        period=period,
        discount_rate=discount_rate,
        interval=interval,
        n_draws=n_draws,
        random_state=random_state,
        freq=freq,
        time_unit=time_unit,
        date_format=date_format,
        currency=currency,
        title=title,
        command="clvmodels " + " ".join(sys.argv[1:]),
        common_shocks=common_shocks,
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
    n_draws: NDraws = 1000,
    mcmc_draws: Annotated[
        int, typer.Option(help="Posterior draws per chain for the report's Bayesian model")
    ] = 500,
    quiet: Annotated[bool, typer.Option(help="Less output")] = False,
) -> None:
    """Run the main job on the bundled CDNOW sample and write the results.

    The family (and, with --mcmc-draws > 0, the Bayesian BG/NBD) is fitted on the
    calibration period of Fader, Hardie & Lee (2005) and compared on the 39-week holdout
    that follows; the best on holdout value, refitted on all of the sample's history,
    forecasts CLV.
    """
    from rich.console import Console

    from clvmodels.datasets import load_cdnow
    from clvmodels.report import write_report

    if output_dir.exists() and not output_dir.is_dir():
        raise CLIError(f"output directory {output_dir} is a file")
    _check_folder(output_dir / "customers.csv", "output")
    console = Console(quiet=quiet)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # A log or a pipe has no width to fit, but rich assumes 80 columns there and
        # would cut the tables' headers; the widest table needs about 110.
        console.width = _LOG_WIDTH
    transactions = load_cdnow(sample=True)
    console.print(
        f"[bold]CDNOW sample[/bold]: {len(transactions):,} transactions of "
        f"{transactions['customer_id'].nunique():,} customers, "
        f"{transactions['date'].min():%Y-%m-%d} to {transactions['date'].max():%Y-%m-%d}"
    )
    settings = PipelineSettings(
        transactions,
        "customer_id",
        "date",
        "amount",
        calibration_end="1997-09-30",
        observation_end="1998-06-30",
        models=_demo_models(mcmc_draws > 0),
        fit_options=_mcmc(mcmc_draws, 500, 2),
        n_draws=n_draws,
        predictive=True,
        segments=True,
        common_shocks=True,  # the report's default: the total and tiers with them
    )
    result = run_pipeline(settings, progressbar=not quiet)
    _show_forecast(console, result)

    output_dir.mkdir(parents=True, exist_ok=True)
    out = write_table_atomically(result.customers(), output_dir / "customers.csv")
    for model in (result.transaction_model, result.spend_model):
        model.save(output_dir / _model_file(model))
    console.print(f"Wrote the per-customer table to {out} and the models to {output_dir}/")
    report_path = write_report(
        result, output_dir / "report.html", currency="USD", command="clvmodels demo",
        progressbar=not quiet,
    )
    console.print(f"Wrote the model comparison report to {report_path}")


def _demo_models(bayesian: bool) -> dict[str, Any]:
    """The family, and with ``bayesian`` the hierarchical Bayesian BG/NBD (one MCMC fit)."""
    from clvmodels.report import default_models

    models: dict[str, Any] = dict(default_models())
    if bayesian:
        models["HierarchicalBetaGeo + HierarchicalGammaGamma"] = (
            "HierarchicalBetaGeo", "HierarchicalGammaGamma"
        )
    return models


@app.command(name="models")
@_one_line_errors
def list_models() -> None:
    """List the models that --model and --spend-model accept."""
    for name, cls in available_models().items():
        params = ", ".join(getattr(cls, "param_names", ()))
        typer.echo(f"{name:<28} {model_kind(cls) or '-':<12} {params}")


def _model_file(model: Any) -> str:
    """``beta_geo.json`` for a BetaGeo, ``pareto_nbd.json`` for a ParetoNBD (acronyms stay
    whole); NetCDF (``.nc``) for models with a posterior."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_",
                  type(model).__name__).lower()
    return f"{name}.{'nc' if getattr(model, 'idata_', None) is not None else 'json'}"


def _show_forecast(console: Any, result: PipelineResult) -> None:
    """Parameters, portfolio total, tiers and the top customers, as rich tables."""
    level = f"{result.settings.interval:.0%}"
    for model in (result.transaction_model, result.spend_model):
        console.print(_rich_table(model.summary().rename_axis("parameter"),
                                  f"{type(model).__name__} parameters (95% intervals)"))
    console.print(
        f"Portfolio CLV over {result.settings.describe_horizon()}: "
        f"[bold]{_fmt_total(result.forecast.total())}[/bold]"
    )
    if (line := _common_shocks_line(result)) is not None:
        console.print(line)
    if result.segmentation is not None:
        console.print(_rich_table(_tier_table(result.segmentation.tiers), _tier_title(result)))
    if (line := _tier_backtest_line(result)) is not None:
        console.print(line)
    table = result.customers()
    unit = unit_name(result.time_unit)
    top = table.sort_values("clv", ascending=False).head(10)
    shown = pd.DataFrame({
        "x": top["frequency"],
        f"t_x ({unit})": top["recency"].map(lambda v: f"{v:.1f}"),
        f"T ({unit})": top["T"].map(lambda v: f"{v:.1f}"),
        "P(alive)": top["probability_alive"].map(lambda v: f"{v:.3f}"),
        "purchases": top["expected_purchases"].map(lambda v: f"{v:.2f}"),
        "spend": top["expected_spend"].map(lambda v: f"{v:.2f}"),
        f"CLV [{level} interval]": [
            f"{c:,.0f} [{lo:,.0f}, {hi:,.0f}]"
            for c, lo, hi in zip(top["clv"], top["clv_lower"], top["clv_upper"], strict=True)
        ],
        "tier": top.get("tier", pd.Series("", index=top.index)),
    })
    console.print(_rich_table(shown, "Top 10 customers by CLV"))


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


#: Width of the demo's tables where the output is not a terminal (a log, a pipe).
_LOG_WIDTH = 120

#: The tiers' columns shown, under headers that the tables' titles define.
_TIER_HEADERS = {
    "customers": "customers",
    "clv_total": "CLV",
    "clv_total_lower": "lower",
    "clv_total_upper": "upper",
    "share_of_value": "share of value",
    "mean_tier_probability": "tier probability",
    "mean_tier_probability_realised": "realised",
}


def _tier_title(result: PipelineResult) -> str:
    """What the tier table's intervals and probabilities are, in one sentence."""
    realised = "mean_tier_probability_realised" in result.segmentation.tiers
    return (
        f"Value tiers ({result.settings.interval:.0%} intervals; tier probability = share of "
        "parameter draws that keep a customer's expected value in its tier"
        + ("; realised = share of simulated futures in which its realised value lands there"
           if realised else "")
        + f"; {'both' if realised else 'it is'} averaged over the tier's customers)"
    )


def _tier_table(tiers: pd.DataFrame) -> pd.DataFrame:
    """The tiers' counts, totals and mean probabilities, formatted, under short headers."""
    shown = tiers[[c for c in _TIER_HEADERS if c in tiers.columns]].copy()
    for col in shown.columns:
        if col.startswith("clv"):
            shown[col] = shown[col].map(lambda v: f"{v:,.0f}")
        elif col != "customers":
            shown[col] = shown[col].map(lambda v: f"{v:.3f}")
    return shown.rename(columns=_TIER_HEADERS)


def _fmt_total(total: Any) -> str:
    if isinstance(total, dict | pd.Series):
        get = total.get
        text = f"{get('clv'):,.0f} (interval {get('clv_lower'):,.0f} to {get('clv_upper'):,.0f}"
        if get("clv_pred_lower") is not None:
            text += (f"; predictive {get('clv_pred_lower'):,.0f} to "
                     f"{get('clv_pred_upper'):,.0f}")
        return text + ")"
    return f"{float(total):,.0f}"


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
