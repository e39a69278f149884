"""Every query in tests/compat/ (what psql, SQLAlchemy, pandas, psycopg, asyncpg, pgjdbc,
Metabase and Grafana send, captured on the wire) runs without error on InsightFlow."""

import tempfile

import psycopg
import pytest

import compat_replay
from conftest import start_server


@pytest.fixture(scope="module")
def compat_server():
    """A server of its own: the captures create tables (pandas' pd_tmp) and need `t`
    and `v`, the table and view they were captured against."""
    with tempfile.TemporaryDirectory() as data_dir:
        srv = start_server(data_dir)
        with psycopg.connect(srv.pg_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id INT, ts TIMESTAMPTZ, host TEXT, value DOUBLE PRECISION)")
            conn.execute("INSERT INTO t VALUES (0, '2025-01-01T00:00:00Z', 'a', 1.5), "
                         "(1, '2025-01-01T00:05:00Z', 'b', 2.5)")
            conn.execute("CREATE VIEW v AS SELECT id, host FROM t")
        yield srv
        srv.proc.terminate()
        srv.proc.wait(timeout=20)


def test_every_captured_client_query_runs(compat_server):
    assert compat_replay.count_steps() > 200, "the captures were not found or not parsed"
    failures = compat_replay.replay(compat_server.pg_dsn)
    report = "\n\n".join(f"{step}\n  -> {error}" for step, error in failures)
    assert not failures, f"{len(failures)} captured queries failed:\n\n{report}"
