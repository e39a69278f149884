"""Replays the queries real clients sent (tests/compat/, captured on the wire against
PostgreSQL 15) against InsightFlow, message for message where libpq allows it.

Each `[cN]` connection of a capture becomes one connection here. A simple `Q` is sent
with PQexec (simple protocol); a `Parse` + `Bind` pair with PQprepare / PQexecPrepared,
keeping the captured parameter type OIDs, parameter bytes, formats and result format.
The `.sql` files (Grafana, Metabase) are statements separated by `--` lines, sent as
simple queries. `TABLE_PLACEHOLDER` (Grafana's picker) becomes `t`.
"""

import ast
import pathlib
import re

import psycopg
from psycopg import pq

COMPAT = pathlib.Path(__file__).resolve().parents[1] / "compat"

LINE = re.compile(r"^\[(c\d+)\] (\S+) ?(.*)$")
PARSE = re.compile(r"name='([^']*)' paramoids=(\[[^\]]*\]) sql=(.*)$", re.S)
BIND = re.compile(r"portal='([^']*)' stmt='([^']*)' paramfmts=(\[[^\]]*\]) params=(\[.*\]) resultfmts=(\[[^\]]*\])$", re.S)


class Step:
    """One query to send: simple (`params is None`) or extended."""

    def __init__(self, source, sql, param_types=None, params=None, param_formats=None, result_format=0):
        self.source = source
        self.sql = sql
        self.param_types = param_types
        self.params = params
        self.param_formats = param_formats
        self.result_format = result_format

    def __repr__(self):
        return f"{self.source}: {self.sql[:200]!r}"


def wire_sessions(path):
    """The connections of one wire log: {conn: [Step]} in order."""
    messages = []  # (conn, kind, text) with continuation lines folded in
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if m:
            messages.append([m.group(1), m.group(2), m.group(3)])
        elif line.startswith("=== "):
            continue
        elif messages:
            messages[-1][2] += "\n" + line
    sessions = {}
    statements = {}  # statement name -> (sql, paramoids)
    for conn, kind, text in messages:
        steps = sessions.setdefault(conn, [])
        source = f"{path.name} [{conn}]"
        if kind == "Q":
            steps.append(Step(source, text.strip()))
        elif kind == "Parse":
            name, oids, sql = PARSE.match(text).groups()
            statements[(conn, name)] = (sql.strip(), ast.literal_eval(oids))
        elif kind == "Bind":
            _, stmt, fmts, params, rfmts = BIND.match(text).groups()
            sql, oids = statements[(conn, stmt)]
            rfmts = ast.literal_eval(rfmts)
            steps.append(Step(source, sql, oids, ast.literal_eval(params), ast.literal_eval(fmts),
                              rfmts[0] if rfmts else 0))
    return sessions


def sql_file(path):
    text = path.read_text().replace("TABLE_PLACEHOLDER", "t")
    parts = [p.strip() for p in re.split(r"^--\s*$", text, flags=re.M)]
    return {path.name: [Step(path.name, p.rstrip(";")) for p in parts if p]}


def all_sessions():
    sessions = {}
    for path in sorted(COMPAT.glob("*_wire.log")):
        for conn, steps in wire_sessions(path).items():
            sessions[f"{path.name} [{conn}]"] = steps
    for path in sorted(COMPAT.glob("*.sql")):
        sessions.update(sql_file(path))
    return sessions


OK = {pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY}


def run_step(pgconn, step):
    """Sends one step; returns None or the error text."""
    if step.params is None:
        res = pgconn.exec_(step.sql.encode())
    else:
        res = pgconn.prepare(b"", step.sql.encode(), param_types=step.param_types)
        if res.status in OK:
            params = [p if p is None else bytes(p) for p in step.params]
            res = pgconn.exec_prepared(b"", params, param_formats=(step.param_formats if params else None),
                                       result_format=step.result_format)
    if res.status in OK:
        return None
    return (res.error_message or b"").decode(errors="replace").strip() or str(res.status)


def replay(dsn):
    """Runs every captured session on its own connection; returns [(step, error)]."""
    failures = []
    for name, steps in all_sessions().items():
        with psycopg.connect(dsn, autocommit=True) as conn:
            for step in steps:
                error = run_step(conn.pgconn, step)
                if error:
                    failures.append((step, error))
    return failures


def count_steps():
    return sum(len(s) for s in all_sessions().values())
