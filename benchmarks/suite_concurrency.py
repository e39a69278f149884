"""`concurrency`: 1 to 100 clients, each on its own connection, running a mix of small
aggregates over TPC-H tables for a fixed time — InsightFlow against PostgreSQL's own
server on the same rows. Throughput, p50/p95/p99 latency and errors per client count."""

import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pyarrow.parquet as pq

from harness import POSTGRES_DSN, Server, log, ratio
from suite_tpch import table_path, tpch_data
from suite_wire import load_postgres

TABLES = ["nation", "supplier", "customer", "part"]
MIX = [
    "SELECT n_name, count(*) FROM {supplier} JOIN {nation} ON s_nationkey = n_nationkey "
    "GROUP BY n_name ORDER BY n_name",
    "SELECT c_mktsegment, avg(c_acctbal) FROM {customer} GROUP BY c_mktsegment ORDER BY 1",
    "SELECT count(*), sum(p_retailprice) FROM {part} WHERE p_size = {k}",
    "SELECT max(s_acctbal) FROM {supplier} WHERE s_nationkey = {n}",
]


def client(dsn, names, deadline, seed, latencies, errors):
    rng = random.Random(seed)
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as e:
        errors.append(f"connect: {e}")
        return
    with conn:
        while time.perf_counter() < deadline:
            sql = rng.choice(MIX).format(**names, k=rng.randint(1, 50), n=rng.randint(0, 24))
            start = time.perf_counter()
            try:
                conn.execute(sql).fetchall()
            except psycopg.Error as e:
                errors.append(str(e))
                continue
            latencies.append(time.perf_counter() - start)


def measure(dsn, names, clients: int, seconds: float) -> dict:
    latencies, errors = [], []
    deadline = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(dsn, names, deadline, i, latencies, errors))
               for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return {"qps": len(latencies) / elapsed, "p50": q[49] * 1e3, "p95": q[94] * 1e3,
            "p99": q[98] * 1e3, "errors": len(errors), "first_error": errors[0] if errors else None}


def run(args) -> dict:
    folder = tpch_data(args.scale)
    prefix = f"insightflow_bench_sf{args.scale:g}_".replace(".", "_")
    for table in TABLES:
        load_postgres(pq.read_table(table_path(folder, table)), prefix + table)
    counts = [int(c) for c in args.clients.split(",")]

    results = {"InsightFlow": {}, "PostgreSQL": {}}
    work = Path(tempfile.mkdtemp(prefix="insightflow-bench-"))
    server = Server(args.binary, work / "data", "--allow-path", str(folder),
                    "--max-connections", str(max(counts) + 10))
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            for table in TABLES:
                conn.execute(f"CREATE EXTERNAL TABLE {table} STORED AS PARQUET "
                             f"LOCATION '{table_path(folder, table)}'")
        for n in counts:
            results["InsightFlow"][n] = measure(server.dsn, {t: t for t in TABLES}, n, args.seconds)
            log(f"InsightFlow {n} clients: {results['InsightFlow'][n]}")
    finally:
        server.stop()
    for n in counts:
        results["PostgreSQL"][n] = measure(POSTGRES_DSN, {t: prefix + t for t in TABLES}, n, args.seconds)
        log(f"PostgreSQL {n} clients: {results['PostgreSQL'][n]}")

    rows = []
    for n in counts:
        mine, peer = results["InsightFlow"][n], results["PostgreSQL"][n]
        rows.append([n, f"{mine['qps']:,.0f}", f"{peer['qps']:,.0f}", ratio(mine["qps"], peer["qps"]),
                     f"{mine['p50']:.1f} / {mine['p95']:.1f} / {mine['p99']:.1f}",
                     f"{peer['p50']:.1f} / {peer['p95']:.1f} / {peer['p99']:.1f}",
                     ratio(mine["p95"], peer["p95"]), f"{mine['errors']} / {peer['errors']}"])
    return {
        "title": f"concurrency — small aggregates over TPC-H SF{args.scale:g} tables, "
                 f"{args.seconds:g} s per client count",
        "peers": "PostgreSQL (same rows, no indexes: every query is a scan in both)",
        "columns": ["clients", "InsightFlow q/s", "PostgreSQL q/s", "throughput ratio",
                    "InsightFlow p50/p95/p99 ms", "PostgreSQL p50/p95/p99 ms", "p95 ratio",
                    "errors (IF / PG)"],
        "rows": rows,
        "results": results,
    }
