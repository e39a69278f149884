"""What every suite shares: the server under test, timing, the machine, peers' settings."""

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
PASSWORD = "bench-password"
# PostgreSQL's own server, the peer for `wire` and `concurrency` (trust auth here).
POSTGRES_DSN = os.environ.get("BENCH_POSTGRES_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")


class Server:
    """The release binary on free ports with its own data dir."""

    def __init__(self, binary: Path, data_dir: Path, *extra: str):
        env = dict(os.environ, INSIGHTFLOW_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(data_dir), "--pg-addr", "127.0.0.1:0",
             "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, env=env, text=True)
        for line in self.proc.stdout:
            if '"insightflow":"ready"' in line:
                self.addrs = json.loads(line)
                break
        else:
            raise RuntimeError("insightflow did not start")
        host, port = self.addrs["pg"].rsplit(":", 1)
        self.dsn = f"host={host} port={port} user=admin password={PASSWORD} dbname=insightflow"
        self.flight_uri = f"grpc://{self.addrs['flight']}"

    def flight(self):
        import adbc_driver_flightsql.dbapi as flight_sql
        return flight_sql.connect(self.flight_uri, autocommit=True,
                                  db_kwargs={"username": "admin", "password": PASSWORD})

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


def statements(script: str) -> list[str]:
    """The statements of a SQL script (TPC-H q15 creates and drops a view around its query)."""
    pieces = [p.strip() for p in script.split(";")]
    return [p for p in pieces if any(line.strip() and not line.strip().startswith("--")
                                     for line in p.splitlines())]


def machine() -> str:
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return f"{platform.machine()}, {cpus} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def ratio(value: float, peer: float) -> str:
    return f"{value / peer:.2f}x" if peer else "-"


def log(message: str) -> None:
    import sys
    print(message, file=sys.stderr, flush=True)
