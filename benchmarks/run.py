"""InsightFlow benchmarks: each suite runs InsightFlow and its peers in the same run and
prints ratios (absolute times on shared machines drift; ratios much less).

    benchmarks/run.sh functions --rows 10000000

Suites:
  functions  profile() and quality() over a wide Parquet table, against DuckDB's
             SUMMARIZE on the same file.

Results go to benchmarks/results/<suite>.json and .md (the README quotes the table).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PASSWORD = "bench-password"


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


class Server:
    """The release binary on free ports with its own data dir."""

    def __init__(self, binary: Path, data_dir: Path):
        env = dict(os.environ, INSIGHTFLOW_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(data_dir), "--pg-addr", "127.0.0.1:0",
             "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, env=env, text=True)
        for line in self.proc.stdout:
            if '"insightflow":"ready"' in line:
                self.addrs = json.loads(line)
                break
        else:
            raise RuntimeError("insightflow did not start")
        host, port = self.addrs["pg"].rsplit(":", 1)
        self.dsn = f"host={host} port={port} user=admin password={PASSWORD} dbname=insightflow"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def timed(fn, runs: int) -> float:
    """Median seconds of `runs` calls (after one untimed warm-up when runs > 1)."""
    if runs > 1:
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def suite_functions(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="insightflow-bench-"))
    files = work / "data" / "files"
    files.mkdir(parents=True)
    parquet = files / "wide.parquet"
    start = time.perf_counter()
    wide_table(args.rows, parquet)
    print(f"generated {args.rows:,} rows x 20 columns in {time.perf_counter() - start:.1f} s "
          f"({parquet.stat().st_size / 1e6:.0f} MB parquet)", file=sys.stderr)

    server = Server(args.binary, work / "data")
    results = {}
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTERNAL TABLE wide STORED AS PARQUET LOCATION 'wide.parquet'")
            for name in ["profile", "quality"]:
                rows = []

                def run(name=name, rows=rows):
                    rows[:] = conn.execute(f"SELECT * FROM {name}('wide')").fetchall()

                results[f"insightflow {name}"] = timed(run, args.runs)
                print(f"insightflow {name}: {results[f'insightflow {name}']:.2f} s, {len(rows)} rows", file=sys.stderr)
    finally:
        server.stop()

    duck = duckdb.connect()
    summary = []

    def summarize():
        summary[:] = duck.execute(f"SUMMARIZE SELECT * FROM read_parquet('{parquet}')").fetchall()

    results["duckdb SUMMARIZE"] = timed(summarize, args.runs)
    print(f"duckdb SUMMARIZE: {results['duckdb SUMMARIZE']:.2f} s, {len(summary)} rows", file=sys.stderr)

    peer = results["duckdb SUMMARIZE"]
    table = [
        {"what": k, "seconds": round(v, 3), "vs duckdb SUMMARIZE": round(v / peer, 2)}
        for k, v in results.items()
    ]
    return {"rows": args.rows, "columns": 20, "runs": args.runs, "duckdb": duckdb.__version__, "results": table}


def machine() -> str:
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return f"{platform.machine()}, {cpus} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def markdown(suite: str, report: dict) -> str:
    lines = [f"### {suite} — {report['rows']:,} rows x {report['columns']} columns, median of {report['runs']}",
             "",
             f"{report['machine']}, {report['date']}; DuckDB {report['duckdb']}.",
             "",
             "| what | seconds | vs DuckDB SUMMARIZE |",
             "|---|---:|---:|"]
    for r in report["results"]:
        lines.append(f"| {r['what']} | {r['seconds']:.2f} | {r['vs duckdb SUMMARIZE']:.2f}x |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["functions"])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "insightflow")
    args = parser.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} is missing: build it with `cargo build --release` (benchmarks use the release build)")
    report = suite_functions(args)
    report["machine"] = machine()
    report["date"] = datetime.date.today().isoformat()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.suite}.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(args.suite, report)
    (RESULTS / f"{args.suite}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
