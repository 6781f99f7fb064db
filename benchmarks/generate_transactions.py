"""Write a synthetic transaction log, simulated from BG/NBD and Gamma-Gamma, as Parquet or CSV.

Customers are simulated chunk by chunk, so memory stays bounded (a few hundred MB at the
default chunk size) whatever the number of customers. Each chunk has its own random
stream derived from ``(seed, chunk index)``: the output is reproducible for a given seed
and chunk size.

The process (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):

* each customer makes a first purchase at a time drawn uniformly over the acquisition
  window (CDNOW: the first 12 weeks of 1997) and is observed until the end of the log;
* repeat purchases arrive as a Poisson process with rate ``lambda ~ Gamma(r, alpha)`` per
  week; after each repeat purchase the customer drops out with probability
  ``p ~ Beta(a, b)``;
* each purchase occasion has value ``z ~ Gamma(p_gg, nu)``, with ``nu ~ Gamma(q, gamma)``
  per customer (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves").

Defaults are the published CDNOW estimates: BG/NBD r=0.243, alpha=4.414, a=0.793,
b=2.426 (weeks); Gamma-Gamma p=6.25, q=3.74, gamma=15.44.

Real logs hold order lines, not occasions: ``--transactions N`` splits occasions into
lines (extra lines go to uniformly chosen occasions, the occasion value split among its
lines) so that the file has exactly N rows, which also exercises same-day aggregation.

Examples
--------
::

    python benchmarks/generate_transactions.py --customers 100000 \\
        --output benchmarks/output/tx_100k.parquet
    python benchmarks/generate_transactions.py --customers 5000000 --transactions 50000000 \\
        --output benchmarks/output/tx_5m --files 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("date", pa.timestamp("s")),
        ("value", pa.float64()),
    ]
)


@dataclass(frozen=True)
class Settings:
    customers: int
    transactions: int | None = None
    start: str = "1997-01-01"
    acquisition_weeks: float = 12.0
    weeks: float = 78.0
    r: float = 0.243
    alpha: float = 4.414
    a: float = 0.793
    b: float = 2.426
    p: float = 6.25
    q: float = 3.74
    gamma: float = 15.44
    seed: int = 2005
    chunk_customers: int = 500_000


def simulate_occasions(
    n: int, first_id: int, settings: Settings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Purchase occasions of customers ``first_id .. first_id + n - 1``.

    Returns customer ids, occasion times in days since ``settings.start`` and values,
    one entry per occasion (first purchases included).
    """
    s = settings
    birth_days = rng.uniform(0.0, s.acquisition_weeks * 7.0, size=n)
    horizon_weeks = s.weeks - birth_days / 7.0
    lam = rng.gamma(s.r, 1.0 / s.alpha, size=n)
    p_drop = rng.beta(s.a, s.b, size=n)

    # Events of the Poisson process in (0, T]; the customer dies at repeat purchase K.
    # Given N events, their times are N sorted uniforms, of which the first min(N, K)
    # happen while the customer is alive.
    n_events = rng.poisson(lam * horizon_weeks)
    n_alive = np.minimum(n_events, rng.geometric(p_drop))
    owner = np.repeat(np.arange(n), n_events)
    u = rng.random(owner.size) * horizon_weeks[owner]
    order = np.lexsort((u, owner))
    u = u[order]
    starts = np.concatenate(([0], np.cumsum(n_events)[:-1]))
    rank = np.arange(owner.size) - starts[owner]
    keep = rank < n_alive[owner]
    repeat_owner = owner[keep]
    repeat_days = birth_days[repeat_owner] + 7.0 * u[keep]

    occ_owner = np.concatenate((np.arange(n), repeat_owner))
    occ_days = np.concatenate((birth_days, repeat_days))
    nu = rng.gamma(s.q, 1.0 / s.gamma, size=n)
    values = rng.gamma(s.p, 1.0 / nu[occ_owner])
    return first_id + occ_owner.astype(np.int64), occ_days, values


def split_into_lines(
    ids: np.ndarray,
    days: np.ndarray,
    values: np.ndarray,
    n_rows: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split occasions into exactly ``n_rows`` lines sharing the occasion's timestamp."""
    n_occ = ids.size
    if n_rows < n_occ:
        raise SystemExit(
            f"--transactions asks for fewer rows than simulated purchase occasions "
            f"({n_rows} < {n_occ} in a chunk); ask for more transactions or fewer customers"
        )
    lines = 1 + np.bincount(rng.integers(0, n_occ, size=n_rows - n_occ), minlength=n_occ)
    occ = np.repeat(np.arange(n_occ), lines)
    share = rng.exponential(size=occ.size)
    share /= np.bincount(occ, weights=share, minlength=n_occ)[occ]
    return ids[occ], days[occ], values[occ] * share


def chunk_table(index: int, first_id: int, n: int, n_rows: int | None, s: Settings) -> pa.Table:
    rng = np.random.default_rng([s.seed, index])
    ids, days, values = simulate_occasions(n, first_id, s, rng)
    if n_rows is not None:
        ids, days, values = split_into_lines(ids, days, values, n_rows, rng)
    # A log arrives in time order, not grouped by customer.
    order = np.argsort(days, kind="stable")
    seconds = np.floor(days[order] * 86400.0).astype(np.int64)
    stamps = np.datetime64(s.start, "s") + seconds.astype("timedelta64[s]")
    cents = np.maximum(np.round(values[order] * 100.0), 1.0) / 100.0
    return pa.table(
        {"customer_id": ids[order], "date": stamps, "value": cents}, schema=SCHEMA
    )


def rows_per_chunk(total_rows: int | None, sizes: list[int], customers: int) -> list[int | None]:
    if total_rows is None:
        return [None] * len(sizes)
    # Exact integer split of the requested total, proportional to chunk sizes.
    bounds = [round(total_rows * c / customers) for c in np.cumsum([0, *sizes])]
    return [hi - lo for lo, hi in itertools.pairwise(bounds)]


class Sink:
    """Parquet or CSV output, one file or ``files`` part files in a directory."""

    def __init__(self, output: Path, fmt: str, files: int, metadata: dict[str, str]) -> None:
        self.output, self.fmt, self.files = output, fmt, files
        self.schema = SCHEMA.with_metadata(metadata)
        self.writers: dict[int, object] = {}
        if files > 1:
            output.mkdir(parents=True, exist_ok=True)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)

    def path(self, part: int) -> Path:
        if self.files == 1:
            return self.output
        return self.output / f"part-{part:05d}.{self.fmt}"

    def write(self, part: int, table: pa.Table) -> None:
        writer = self.writers.get(part)
        if writer is None:
            if self.fmt == "parquet":
                writer = pq.ParquetWriter(self.path(part), self.schema, compression="zstd")
            else:
                writer = pacsv.CSVWriter(self.path(part), self.schema)
            self.writers[part] = writer
        if self.fmt == "parquet":
            writer.write_table(table.replace_schema_metadata(self.schema.metadata), 1_000_000)
        else:
            writer.write_table(table)

    def close(self) -> list[Path]:
        for writer in self.writers.values():
            writer.close()
        return [self.path(k) for k in sorted(self.writers)]


def generate(settings: Settings, output: Path, fmt: str = "parquet", files: int = 1) -> dict:
    """Write the log and return a description of what was written."""
    s = settings
    n_chunks = max(1, math.ceil(s.customers / s.chunk_customers))
    sizes = [min(s.chunk_customers, s.customers - k * s.chunk_customers) for k in range(n_chunks)]
    row_targets = rows_per_chunk(s.transactions, sizes, s.customers)
    sink = Sink(output, fmt, files, {"clvmodels_generator": json.dumps(asdict(s))})
    t0 = time.perf_counter()
    n_rows = 0
    first_id = 1
    for k, (n, rows) in enumerate(zip(sizes, row_targets, strict=True)):
        table = chunk_table(k, first_id, n, rows, s)
        sink.write(k % files, table)
        n_rows += table.num_rows
        first_id += n
    paths = sink.close()
    return {
        "settings": asdict(s),
        "format": fmt,
        "paths": [str(p) for p in paths],
        "customers": s.customers,
        "rows": n_rows,
        "observation_end": str(np.datetime64(s.start, "D") + math.floor(s.weeks * 7) - 1),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--transactions", type=int, default=None,
                        help="exact number of rows; occasions are split into order lines")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--files", type=int, default=1,
                        help="write this many part files into the directory --output")
    parser.add_argument("--weeks", type=float, default=Settings.weeks)
    parser.add_argument("--acquisition-weeks", type=float, default=Settings.acquisition_weeks)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--chunk-customers", type=int, default=Settings.chunk_customers)
    args = parser.parse_args(argv)
    if args.customers < 1 or args.files < 1 or args.chunk_customers < 1:
        parser.error("--customers, --files and --chunk-customers must be positive")
    settings = Settings(
        customers=args.customers,
        transactions=args.transactions,
        weeks=args.weeks,
        acquisition_weeks=args.acquisition_weeks,
        seed=args.seed,
        chunk_customers=args.chunk_customers,
    )
    info = generate(settings, args.output, args.format, args.files)
    json.dump(info, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
