"""`wire`: fetch all of TPC-H `lineitem` — InsightFlow over pgwire (text and binary) and
Flight SQL, and PostgreSQL's own server (the one on this machine) for the same rows.

The pg clients are libpq through psycopg's low-level `pgconn.exec_params`: libpq reads
the whole result, no Python object is made per value, so what is timed is the server,
the wire and libpq, the same for both servers. psycopg's `fetchall()` (a Python tuple per
row) is timed too, because that is what most users see."""

import io
import tempfile
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import pq as libpq

from harness import POSTGRES_DSN, Server, log, ratio, timed
from suite_tpch import table_path, tpch_data

QUERY = "SELECT * FROM {table}"


def pg_type(t: pa.DataType) -> str:
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_date(t):
        return "date"
    return "text"


def plain_strings(table: pa.Table) -> pa.Table:
    """`table` with string views as plain strings (tpchgen writes views; CSV needs plain)."""
    schema = pa.schema([f.with_type(pa.string()) if f.type == pa.string_view() else f
                        for f in table.schema])
    return table.cast(schema)


def load_postgres(table: pa.Table, name: str) -> None:
    """`lineitem` into PostgreSQL once (kept between runs: loading takes a minute)."""
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]
        if exists and conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == table.num_rows:
            return
        log(f"loading {table.num_rows:,} rows into PostgreSQL table {name}")
        columns = ", ".join(f"{f.name} {pg_type(f.type)}" for f in table.schema)
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"CREATE TABLE {name} ({columns})")
        with conn.cursor().copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy:
            for batch in plain_strings(table).to_batches(max_chunksize=200_000):
                buffer = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buffer,
                                pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())
        conn.execute(f"VACUUM ANALYZE {name}")


def libpq_fetch(dsn: str, sql: str, binary: bool, expected: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        fmt = libpq.Format.BINARY if binary else libpq.Format.TEXT
        result = conn.pgconn.exec_params(sql.encode(), [], result_format=fmt)
        if result.status != libpq.ExecStatus.TUPLES_OK:
            raise RuntimeError(result.error_message.decode())
        assert result.ntuples == expected, (result.ntuples, expected)
        result.clear()


def psycopg_fetch(dsn: str, sql: str, binary: bool, expected: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.cursor(binary=binary).execute(sql).fetchall()
        assert len(rows) == expected


def run(args) -> dict:
    folder = tpch_data(args.scale)
    path = table_path(folder, "lineitem")
    table = pq.read_table(path)
    rows, size = table.num_rows, table.nbytes
    pg_name = f"insightflow_bench_lineitem_sf{args.scale:g}".replace(".", "_")
    load_postgres(table, pg_name)
    del table

    seconds = {}
    postgres_sql = QUERY.format(table=pg_name)
    for fmt in ["text", "binary"]:
        seconds[f"PostgreSQL libpq {fmt}"] = timed(
            lambda: libpq_fetch(POSTGRES_DSN, postgres_sql, fmt == "binary", rows), args.runs)
        log(f"PostgreSQL libpq {fmt}: {seconds[f'PostgreSQL libpq {fmt}']:.2f} s")

    work = Path(tempfile.mkdtemp(prefix="insightflow-bench-"))
    server = Server(args.binary, work / "data", "--allow-path", str(folder))
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE EXTERNAL TABLE lineitem STORED AS PARQUET LOCATION '{path}'")
        sql = QUERY.format(table="lineitem")
        for fmt in ["text", "binary"]:
            seconds[f"InsightFlow pgwire libpq {fmt}"] = timed(
                lambda: libpq_fetch(server.dsn, sql, fmt == "binary", rows), args.runs)
            log(f"InsightFlow libpq {fmt}: {seconds[f'InsightFlow pgwire libpq {fmt}']:.2f} s")

        def flight():
            with server.flight() as conn, conn.cursor() as cursor:
                cursor.execute(sql)
                assert cursor.fetch_arrow_table().num_rows == rows

        seconds["InsightFlow Flight SQL (ADBC)"] = timed(flight, args.runs)
        log(f"InsightFlow Flight: {seconds['InsightFlow Flight SQL (ADBC)']:.2f} s")
        if args.python_rows:
            for fmt in ["text", "binary"]:
                seconds[f"InsightFlow psycopg fetchall {fmt}"] = timed(
                    lambda: psycopg_fetch(server.dsn, sql, fmt == "binary", rows), 1)
    finally:
        server.stop()
    if args.python_rows:
        for fmt in ["text", "binary"]:
            seconds[f"PostgreSQL psycopg fetchall {fmt}"] = timed(
                lambda: psycopg_fetch(POSTGRES_DSN, postgres_sql, fmt == "binary", rows), 1)

    peer = seconds["PostgreSQL libpq text"]
    return {
        "title": f"wire — all of lineitem SF{args.scale:g} ({rows:,} rows, {size / 1e6:.0f} MB as Arrow), "
                 f"median of {args.runs}",
        "peers": "PostgreSQL " + postgres_version(),
        "columns": ["client and server", "seconds", "rows/s", "MB/s", "speed vs PostgreSQL text"],
        "rows": [[k, f"{v:.2f}", f"{rows / v:,.0f}", f"{size / 1e6 / v:,.0f}", ratio(peer, v)]
                 for k, v in seconds.items()],
        "seconds": seconds,
    }


def postgres_version() -> str:
    with psycopg.connect(POSTGRES_DSN) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]
