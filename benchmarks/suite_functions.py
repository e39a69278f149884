"""`functions`: profile() and quality() over a wide Parquet table, against DuckDB's SUMMARIZE
on the same file."""

import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from harness import Server, log, ratio, timed


def wide_table(rows: int, path: Path) -> None:
    """20 columns of the kinds real tables hold, deterministic (seed 42)."""
    rng = np.random.default_rng(42)
    cols = {}
    for i in range(5):
        cols[f"int_{i}"] = rng.integers(0, 10 ** (i + 2), rows)
    for i in range(5):
        x = rng.normal(100 * (i + 1), 15 * (i + 1), rows)
        x[rng.random(rows) < 0.02 * i] = np.nan  # some NULLs
        cols[f"float_{i}"] = pa.array(x, from_pandas=True)
    for i, card in enumerate([4, 50, 1000, 100000]):
        words = pa.array([f"cat_{i}_{k}" for k in range(card)])
        idx = pa.array(rng.integers(0, card, rows).astype(np.int32))
        cols[f"text_{i}"] = pa.DictionaryArray.from_arrays(idx, words).cast(pa.string())
    numbers = pa.array(rng.integers(0, 1000, rows)).cast(pa.string())
    cols["numbers_as_text"] = numbers
    days = rng.integers(0, 3 * 365, rows).astype("int32") + 19000
    cols["day"] = pa.array(days, type=pa.date32())
    cols["ts"] = pa.array(days.astype("int64") * 86400_000_000 + rng.integers(0, 86400_000_000, rows), type=pa.timestamp("us"))
    cols["flag"] = pa.array(rng.random(rows) < 0.3)
    cols["constant"] = pa.array(np.full(rows, 7, dtype=np.int64))
    cols["id"] = pa.array(np.arange(rows, dtype=np.int64))
    table = pa.table(cols)
    assert table.num_columns == 20, table.num_columns
    pq.write_table(table, path, row_group_size=1_000_000)


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="insightflow-bench-"))
    files = work / "data" / "files"
    files.mkdir(parents=True)
    parquet = files / "wide.parquet"
    start = time.perf_counter()
    wide_table(args.rows, parquet)
    log(f"generated {args.rows:,} rows x 20 columns in {time.perf_counter() - start:.1f} s "
        f"({parquet.stat().st_size / 1e6:.0f} MB parquet)")

    server = Server(args.binary, work / "data")
    results = {}
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTERNAL TABLE wide STORED AS PARQUET LOCATION 'wide.parquet'")
            for name in ["profile", "quality"]:
                rows = []

                def call(name=name, rows=rows):
                    rows[:] = conn.execute(f"SELECT * FROM {name}('wide')").fetchall()

                results[f"insightflow {name}"] = timed(call, args.runs)
                log(f"insightflow {name}: {results[f'insightflow {name}']:.2f} s, {len(rows)} rows")
    finally:
        server.stop()

    duck = duckdb.connect()
    summary = []

    def summarize():
        summary[:] = duck.execute(f"SUMMARIZE SELECT * FROM read_parquet('{parquet}')").fetchall()

    results["duckdb SUMMARIZE"] = timed(summarize, args.runs)
    log(f"duckdb SUMMARIZE: {results['duckdb SUMMARIZE']:.2f} s, {len(summary)} rows")

    peer = results["duckdb SUMMARIZE"]
    return {
        "title": f"functions — {args.rows:,} rows x 20 columns, median of {args.runs}",
        "peers": f"DuckDB {duckdb.__version__}",
        "columns": ["what", "seconds", "vs DuckDB SUMMARIZE"],
        "rows": [[k, f"{v:.2f}", ratio(v, peer)] for k, v in results.items()],
        "seconds": results,
    }
