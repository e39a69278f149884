"""A real InsightFlow server for the Python client tests.

Starts the binary (INSIGHTFLOW_BIN, default target/debug/insightflow) on free ports
with a temporary data dir and the demo data, and stops it after the session.
"""

import json
import os
import pathlib
import subprocess
import tempfile
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "py-admin-password"


class Server:
    def __init__(self, proc, ready, data_dir):
        self.proc = proc
        self.data_dir = data_dir
        self.pg_host, pg_port = ready["pg"].rsplit(":", 1)
        self.pg_port = int(pg_port)
        self.flight = ready["flight"]
        self.password = PASSWORD

    @property
    def pg_dsn(self):
        return f"host={self.pg_host} port={self.pg_port} user=admin password={PASSWORD} dbname=insightflow"

    @property
    def sqlalchemy_url(self):
        return f"postgresql+psycopg://admin:{PASSWORD}@{self.pg_host}:{self.pg_port}/insightflow"


def start_server(data_dir):
    binary = os.environ.get("INSIGHTFLOW_BIN", str(ROOT / "target" / "debug" / "insightflow"))
    if not os.path.exists(binary):
        raise RuntimeError(f"{binary} does not exist: build it first (cargo build)")
    env = dict(os.environ, INSIGHTFLOW_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn")
    log = open(os.path.join(data_dir, "server.log"), "w")
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--pg-addr", "127.0.0.1:0",
         "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--demo"],
        stdout=subprocess.PIPE, stderr=log, env=env, text=True,
    )
    result = {}

    def read():
        for line in proc.stdout:
            if '"insightflow":"ready"' in line:
                result["ready"] = json.loads(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    if "ready" not in result:
        proc.kill()
        raise RuntimeError("server did not start: " + open(os.path.join(data_dir, "server.log")).read())
    return Server(proc, result["ready"], data_dir)


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory() as data_dir:
        srv = start_server(data_dir)
        yield srv
        srv.proc.terminate()
        srv.proc.wait(timeout=20)
