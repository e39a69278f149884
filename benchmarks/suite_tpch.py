"""`tpch`: the 22 TPC-H queries over Parquet — InsightFlow over pgwire (psycopg, binary
results) and over Flight SQL (ADBC), embedded DataFusion (the same version, in-process:
`df-embedded`) and DuckDB, each on the same files, medians of several runs."""

import json
import statistics
import subprocess
import tempfile
from pathlib import Path

import duckdb
import psycopg

from harness import DATA, ROOT, Server, log, ratio, statements, timed

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
QUERIES = ROOT / "benchmarks" / "queries" / "tpch"
TOOLS = ROOT / "benchmarks" / ".tools" / "bin"


def tpch_data(scale: float) -> Path:
    """TPC-H Parquet files at `scale`, generated once by tpchgen-cli and kept."""
    folder = DATA / f"tpch-sf{scale:g}"
    if not all(table_path(folder, t) for t in TABLES):
        folder.mkdir(parents=True, exist_ok=True)
        log(f"generating TPC-H SF{scale:g} with tpchgen-cli into {folder}")
        subprocess.run([str(TOOLS / "tpchgen-cli"), "parquet", "--scale-factor", f"{scale:g}",
                        "--output-dir", str(folder)], check=True)
    return folder


def table_path(folder: Path, table: str) -> Path | None:
    for path in (folder / f"{table}.parquet", folder / table):
        if path.exists():
            return path
    return None


def query_names(selected: str | None) -> list[str]:
    if selected:
        return [f"q{int(q)}" for q in selected.split(",")]
    return [f"q{i}" for i in range(1, 23)]


def run_script(cursor, script: str) -> int:
    rows = 0
    for sql in statements(script):
        cursor.execute(sql)
        if cursor.description is not None:
            rows = len(cursor.fetchall()) or rows
    return rows


def run_flight(conn, script: str) -> int:
    rows = 0
    with conn.cursor() as cursor:
        for sql in statements(script):
            cursor.execute(sql)
            if cursor.description is not None:
                rows = cursor.fetch_arrow_table().num_rows or rows
    return rows


def run_duckdb(duck, script: str) -> int:
    rows = 0
    for sql in statements(script):
        result = duck.execute(sql)
        if result.description is not None:
            rows = result.fetch_arrow_table().num_rows or rows
    return rows


def embedded(args, folder: Path, names: list[str]) -> dict[str, float]:
    """Per-query medians from df-embedded (its first run is the warm-up)."""
    binary = args.binary.parent / "df-embedded"
    out = subprocess.run([str(binary), "--data", str(folder), "--queries", str(QUERIES),
                          "--runs", str(args.runs + 1), *names],
                         check=True, capture_output=True, text=True).stdout
    medians = {}
    for line in out.splitlines():
        record = json.loads(line)
        medians[record["query"]] = statistics.median(record["seconds"][1:])
    return medians


def run(args) -> dict:
    folder = tpch_data(args.scale)
    names = query_names(args.queries)
    scripts = {name: (QUERIES / f"{name}.sql").read_text() for name in names}
    times: dict[str, dict[str, float]] = {name: {} for name in names}

    work = Path(tempfile.mkdtemp(prefix="insightflow-bench-"))
    server = Server(args.binary, work / "data", "--allow-path", str(folder))
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn, server.flight() as flight:
            for table in TABLES:
                conn.execute(f"CREATE EXTERNAL TABLE {table} STORED AS PARQUET "
                             f"LOCATION '{table_path(folder, table)}'")
            for name, script in scripts.items():
                cursor = conn.cursor(binary=True)
                times[name]["pgwire"] = timed(lambda: run_script(cursor, script), args.runs)
                times[name]["flight"] = timed(lambda: run_flight(flight, script), args.runs)
                log(f"{name}: pgwire {times[name]['pgwire']:.3f} s, flight {times[name]['flight']:.3f} s")
    finally:
        server.stop()

    for name, seconds in embedded(args, folder, names).items():
        times[name]["embedded"] = seconds

    duck = duckdb.connect()
    for table in TABLES:
        path = table_path(folder, table)
        pattern = f"{path}/*.parquet" if path.is_dir() else str(path)
        duck.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}')")
    for name, script in scripts.items():
        times[name]["duckdb"] = timed(lambda: run_duckdb(duck, script), args.runs)
        log(f"{name}: embedded {times[name]['embedded']:.3f} s, duckdb {times[name]['duckdb']:.3f} s")

    peers = ["pgwire", "flight", "embedded", "duckdb"]
    totals = {p: sum(t[p] for t in times.values()) for p in peers}
    rows = []
    for name, t in list(times.items()) + [("total", totals)]:
        base = t["embedded"]
        rows.append([name, *(f"{t[p]:.3f}" for p in peers),
                     ratio(t["pgwire"], base), ratio(t["flight"], base), ratio(t["duckdb"], base)])
    return {
        "title": f"tpch — SF{args.scale:g}, {len(names)} queries, median of {args.runs}",
        "peers": f"DuckDB {duckdb.__version__}; embedded DataFusion is the version InsightFlow is built on",
        "columns": ["query", "pgwire s", "flight s", "embedded DF s", "duckdb s",
                    "pgwire / DF", "flight / DF", "duckdb / DF"],
        "rows": rows,
        "seconds": times,
    }
