"""`ingest`: TPC-H `lineitem` as CSV into a table — InsightFlow's CSV-to-table (`CREATE
TABLE AS` over the file), `COPY FROM STDIN` (psycopg) and Flight SQL bulk ingest (ADBC
`adbc_ingest`), against DuckDB's `read_csv` into a database file and PostgreSQL's own
`COPY FROM STDIN`. Every target is durable: the table is there after a restart."""

import tempfile
import time
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from harness import POSTGRES_DSN, Server, log, ratio
from suite_tpch import table_path, tpch_data
from suite_wire import pg_type, plain_strings

CHUNK = 1 << 20


def csv_file(folder: Path) -> Path:
    """lineitem as CSV with a header, made once from the Parquet file."""
    path = folder / "lineitem.csv"
    if not path.exists():
        log(f"writing {path}")
        pacsv.write_csv(plain_strings(pq.read_table(table_path(folder, "lineitem"))), path)
    return path


def copy_from_file(conn, sql: str, path: Path) -> None:
    with conn.cursor().copy(sql) as copy, path.open("rb") as f:
        while chunk := f.read(CHUNK):
            copy.write(chunk)


def once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(args) -> dict:
    folder = tpch_data(args.scale)
    csv = csv_file(folder)
    # In batches of 50,000 rows (~11 MB) with plain strings: ADBC's Flight SQL driver sends one
    # batch per message and refuses messages over 16 MiB (a slice of a string-view
    # array would carry all of its data buffers).
    table = plain_strings(pq.read_table(table_path(folder, "lineitem")))
    table = pa.Table.from_batches(table.to_batches(max_chunksize=50_000))
    rows, size = table.num_rows, csv.stat().st_size
    columns = ", ".join(f"{f.name} {pg_type(f.type)}" for f in table.schema)
    seconds = {}

    work = Path(tempfile.mkdtemp(prefix="insightflow-bench-"))
    server = Server(args.binary, work / "data", "--allow-path", str(folder))
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE EXTERNAL TABLE lineitem_csv STORED AS CSV LOCATION '{csv}' "
                         "OPTIONS ('format.has_header' 'true')")
            seconds["InsightFlow CREATE TABLE AS (CSV file)"] = once(
                lambda: conn.execute("CREATE TABLE li_ctas AS SELECT * FROM lineitem_csv"))
            conn.execute(f"CREATE TABLE li_copy ({columns})")
            seconds["InsightFlow COPY FROM STDIN (csv)"] = once(
                lambda: copy_from_file(conn, "COPY li_copy FROM STDIN (FORMAT csv, HEADER true)", csv))
            for name in ["li_ctas", "li_copy"]:
                assert conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == rows, name

        def ingest():
            with server.flight() as flight, flight.cursor() as cursor:
                cursor.adbc_ingest("li_flight", table, mode="create")

        seconds["InsightFlow Flight SQL bulk ingest (ADBC)"] = once(ingest)
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM li_flight").fetchone()[0] == rows
    finally:
        server.stop()
    for what, s in seconds.items():
        log(f"{what}: {s:.2f} s")

    duck = duckdb.connect(str(work / "duck.db"))
    seconds["DuckDB read_csv into a table"] = once(
        lambda: duck.execute(f"CREATE TABLE li AS SELECT * FROM read_csv('{csv}', header = true)"))
    assert duck.execute("SELECT count(*) FROM li").fetchone()[0] == rows
    duck.close()

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS insightflow_bench_ingest")
        conn.execute(f"CREATE TABLE insightflow_bench_ingest ({columns})")
        seconds["PostgreSQL COPY FROM STDIN (csv)"] = once(
            lambda: copy_from_file(conn, "COPY insightflow_bench_ingest FROM STDIN (FORMAT csv, HEADER true)", csv))
        assert conn.execute("SELECT count(*) FROM insightflow_bench_ingest").fetchone()[0] == rows
        conn.execute("DROP TABLE insightflow_bench_ingest")
    for what in list(seconds)[-2:]:
        log(f"{what}: {seconds[what]:.2f} s")

    peer = seconds["PostgreSQL COPY FROM STDIN (csv)"]
    return {
        "title": f"ingest — lineitem SF{args.scale:g} ({rows:,} rows, {size / 1e6:.0f} MB of CSV), one run each",
        "peers": f"DuckDB {duckdb.__version__}, PostgreSQL (this machine's)",
        "columns": ["what", "seconds", "rows/s", "MB/s of CSV", "speed vs PostgreSQL COPY"],
        "rows": [[k, f"{v:.2f}", f"{rows / v:,.0f}", f"{size / 1e6 / v:,.0f}", ratio(peer, v)]
                 for k, v in seconds.items()],
        "seconds": seconds,
    }
