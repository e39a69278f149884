"""The how-to code in clients/ runs as written against a real server."""

import os
import subprocess
import sys

from conftest import ROOT


def run(cmd, server):
    env = dict(
        os.environ,
        INSIGHTFLOW_PASSWORD=server.password,
        PGPASSWORD=server.password,
        INSIGHTFLOW_PG_PORT=str(server.pg_port),
        INSIGHTFLOW_FLIGHT_PORT=server.flight.rsplit(":", 1)[1],
    )
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout


def test_psycopg_example(server):
    out = run([sys.executable, "clients/python/psycopg_example.py"], server)
    assert len(out.strip().splitlines()) == 4
    assert "North" in out


def test_adbc_example(server):
    out = run([sys.executable, "clients/python/adbc_example.py"], server)
    assert "order_id" in out and "North" in out


def test_psql_tour(server):
    out = run(
        ["psql", "-h", server.pg_host, "-p", str(server.pg_port), "-U", "admin", "-d", "insightflow",
         "-X", "-v", "ON_ERROR_STOP=1", "-f", "clients/psql/tour.sql"],
        server,
    )
    assert "Revenue by region" in out and "Laptop" in out
