"""The tools people already use, each browsing InsightFlow's catalog and querying it:
psql meta-commands, SQLAlchemy inspect() with psycopg2 and psycopg 3, pandas,
asyncpg (array parameters, a pool), node-postgres and pgjdbc."""

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import asyncpg
import pandas as pd
import psycopg
import pytest
import sqlalchemy

from conftest import start_server

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog():
    """A server of its own (the demo data plus a view and a schema, so listings have
    more than the demo tables; other tests' ask() questions do not see them)."""
    with tempfile.TemporaryDirectory() as data_dir:
        srv = start_server(data_dir)
        with psycopg.connect(srv.pg_dsn, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA matrix")
            conn.execute("CREATE TABLE matrix.events (id BIGINT, at TIMESTAMP, kind TEXT, amount DOUBLE)")
            conn.execute("CREATE VIEW big_orders AS SELECT order_id, revenue FROM sales WHERE revenue > 1000")
        yield srv
        srv.proc.terminate()
        srv.proc.wait(timeout=20)


def psql(server, *args):
    out = subprocess.run(
        ["psql", "-h", server.pg_host, "-p", str(server.pg_port), "-U", "admin", "-d", "insightflow", "-X",
         *args],
        env=dict(os.environ, PGPASSWORD=server.password), capture_output=True, text=True,
    )
    assert out.returncode == 0 and "ERROR" not in out.stderr, out.stderr
    return out.stdout


def test_psql_meta_commands(catalog):
    dt = psql(catalog, "-c", r"\dt")
    for table in ["customers", "products", "sales"]:
        assert f"public | {table}" in dt and "| table |" in dt, dt
    d = psql(catalog, "-c", r"\d sales")
    assert 'Table "public.sales"' in d
    assert "order_date  | date" in d and "revenue     | double precision" in d, d
    d_plus = psql(catalog, "-c", r"\d+ sales")
    assert "Storage" in d_plus and "region      | text" in d_plus, d_plus
    dn = psql(catalog, "-c", r"\dn")
    assert "public" in dn and "matrix" in dn, dn
    dl = psql(catalog, "-c", r"\l")
    assert "insightflow" in dl, dl
    dv = psql(catalog, "-c", r"\dv")
    assert "public | big_orders | view" in dv, dv
    view = psql(catalog, "-c", r"\d+ big_orders")
    assert "View definition:" in view and "revenue > 1000" in view, view
    df = psql(catalog, "-c", r"\df")
    assert "List of functions" in df, df
    schema_table = psql(catalog, "-c", r"\d matrix.events")
    assert 'Table "matrix.events"' in schema_table and "timestamp without time zone" in schema_table, schema_table


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_sqlalchemy_inspect(catalog, driver):
    engine = sqlalchemy.create_engine(
        f"postgresql+{driver}://admin:{catalog.password}@{catalog.pg_host}:{catalog.pg_port}/insightflow")
    try:
        inspector = sqlalchemy.inspect(engine)
        assert {"public", "matrix"} <= set(inspector.get_schema_names())
        assert {"customers", "products", "sales"} <= set(inspector.get_table_names())
        assert "big_orders" in inspector.get_view_names()
        assert inspector.get_table_names(schema="matrix") == ["events"]
        columns = {c["name"]: c for c in inspector.get_columns("sales")}
        assert list(columns)[:3] == ["order_id", "order_date", "customer_id"]
        assert isinstance(columns["order_id"]["type"], sqlalchemy.Integer)
        assert isinstance(columns["order_date"]["type"], sqlalchemy.Date)
        assert isinstance(columns["revenue"]["type"], sqlalchemy.Float)
        assert isinstance(columns["region"]["type"], sqlalchemy.Text)
        events = {c["name"]: c["type"] for c in inspector.get_columns("events", schema="matrix")}
        assert isinstance(events["at"], sqlalchemy.DateTime) and isinstance(events["id"], sqlalchemy.BigInteger)
        assert inspector.get_pk_constraint("sales")["constrained_columns"] == []
        assert inspector.get_indexes("sales") == []
        assert inspector.get_foreign_keys("sales") == []
        assert inspector.has_table("sales") and not inspector.has_table("nope")
        view_columns = [c["name"] for c in inspector.get_columns("big_orders")]
        assert view_columns == ["order_id", "revenue"]
    finally:
        engine.dispose()


def test_pandas_read_sql_table_and_query(catalog):
    engine = sqlalchemy.create_engine(catalog.sqlalchemy_url)
    try:
        frame = pd.read_sql_table("products", engine)
        assert len(frame) > 0 and "product_id" in frame.columns
        by_region = pd.read_sql("SELECT region, count(*) AS n FROM sales GROUP BY region ORDER BY region", engine)
        assert by_region["n"].sum() == 2000
    finally:
        engine.dispose()


def test_asyncpg_array_parameters_and_a_pool(catalog):
    async def run():
        conn = await asyncpg.connect(host=catalog.pg_host, port=catalog.pg_port, user="admin",
                                     password=catalog.password, database="insightflow")
        try:
            n = await conn.fetchval("SELECT count(*) FROM sales WHERE region = ANY($1::text[])", ["North", "South"])
            assert n == 488 + 495
            n = await conn.fetchval("SELECT count(*) FROM sales WHERE region = ANY($1)", ["East"])
            assert n == 512
            regions = await conn.fetchval("SELECT array_agg(DISTINCT region ORDER BY region) FROM sales")
            assert list(regions) == ["East", "North", "South", "West"]
        finally:
            await conn.close()
        # A pool resets each connection on release (RESET ALL, UNLISTEN *, advisory unlock).
        pool = await asyncpg.create_pool(host=catalog.pg_host, port=catalog.pg_port, user="admin",
                                         password=catalog.password, database="insightflow",
                                         min_size=1, max_size=2)
        try:
            async def count(q):
                async with pool.acquire() as c:
                    return await c.fetchval("SELECT count(*) FROM sales WHERE quantity >= $1", q)
            counts = await asyncio.gather(*[count(q) for q in range(1, 7)])
            assert counts[0] == 2000 and counts == sorted(counts, reverse=True)
        finally:
            await pool.close()

    asyncio.run(run())


def test_node_postgres(catalog):
    node_dir = ROOT / "tests" / "node"
    assert (node_dir / "node_modules" / "pg").is_dir(), "run scripts/test.sh (it installs tests/node)"
    env = dict(os.environ, PGHOST=catalog.pg_host, PGPORT=str(catalog.pg_port), PGUSER="admin",
               PGPASSWORD=catalog.password, PGDATABASE="insightflow")
    out = subprocess.run(["node", str(node_dir / "pg_client.js")], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["version"].startswith("PostgreSQL 16.")
    assert seen["regions"] == [{"region": "East", "n": 512}, {"region": "North", "n": 488},
                               {"region": "South", "n": 495}, {"region": "West", "n": 505}]
    assert 0 < seen["north"] < 488
    assert seen["any"] == 488 + 495
    assert {"sales", "customers", "products", "big_orders"} <= set(seen["tables"])
    assert seen["error"] == "42P01" and seen["after_error"] == 1
    assert seen["pool"][0] == 2000 and len(seen["pool"]) == 6


def test_pgjdbc_metadata_fetch_size_and_prepared(catalog):
    jar = "/usr/share/java/postgresql.jar"
    assert os.path.exists(jar) and shutil.which("java"), "run scripts/test.sh (it installs pgjdbc)"
    url = f"jdbc:postgresql://{catalog.pg_host}:{catalog.pg_port}/insightflow"
    out = subprocess.run(["java", "-cp", jar, str(ROOT / "tests" / "java" / "PgJdbc.java"), url, "admin",
                          catalog.password], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    seen = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line and " sum=" not in line)
    assert seen["product"].startswith("PostgreSQL 16."), seen
    tables = seen["tables"]
    for t in ["customers:TABLE", "products:TABLE", "sales:TABLE", "big_orders:VIEW"]:
        assert t in tables, tables
    assert seen["columns"].startswith("order_id:int4,order_date:date,"), seen["columns"]
    assert seen["primary_keys"] == "0"
    fetched = next(line for line in out.stdout.splitlines() if line.startswith("fetched="))
    assert fetched == "fetched=2000 sum=2001000", fetched
    assert seen["count_North"] == "488" and seen["count_West"] == "505"


def grafana_expand(sql, start="2024-01-01T00:00:00Z", end="2026-01-15T00:00:00Z"):
    """The Postgres data source's macros, expanded the way Grafana expands them."""
    import re

    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 BETWEEN '{start}' AND '{end}'", sql)

    def group(m):
        n, unit = int(m.group(2)[:-1]), m.group(2)[-1]
        step = n * seconds[unit]
        return f'floor(extract(epoch from {m.group(1)})/{step})*{step} AS "time"'

    return re.sub(r"\$__timeGroupAlias\((\w+),\s*(\d+[smhd])\)", group, sql)


def test_grafana_dashboard_and_pickers(catalog):
    """The shipped dashboard's panels and Grafana's table and column pickers run and
    return rows."""
    dashboard = json.loads((ROOT / "clients" / "grafana" / "dashboards" / "insightflow-sales.json").read_text())
    provisioning = (ROOT / "clients" / "grafana" / "provisioning" / "datasources" / "insightflow.yaml").read_text()
    assert "grafana-postgresql-datasource" in provisioning and "uid: insightflow" in provisioning
    with psycopg.connect(catalog.pg_dsn, autocommit=True) as conn:
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "insightflow"
            sql = grafana_expand(panel["targets"][0]["rawSql"])
            rows = conn.execute(sql).fetchall()
            assert len(rows) > 0, panel["title"]
            assert rows == sorted(rows, key=lambda r: r[0]), panel["title"]
        compat = ROOT / "tests" / "compat"
        tables = [r[0] for r in conn.execute((compat / "grafana_tables.sql").read_text()).fetchall()]
        assert {"sales", "customers", "big_orders", "matrix.events"} <= set(tables), tables
        columns = dict(conn.execute(
            (compat / "grafana_columns.sql").read_text().replace("TABLE_PLACEHOLDER", "sales")).fetchall())
        assert columns["order_date"] == "date" and columns["revenue"] == "double precision", columns


def test_copy_text_format_keeps_tabs_newlines_backslashes_and_nulls(catalog):
    """psycopg's COPY writes the text format, escaping what would break a row."""
    values = [(1, "tab\there"), (2, "two\nlines"), (3, "back\\slash \\N"), (4, None), (5, ""), (6, 'say "hi"')]
    with psycopg.connect(catalog.pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE copied_text (id INT, body TEXT)")
        with conn.cursor() as cur:
            with cur.copy("COPY copied_text (id, body) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        assert conn.execute("SELECT id, body FROM copied_text ORDER BY id").fetchall() == values
        # And back out in the same format.
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, body FROM copied_text ORDER BY id) TO STDOUT") as copy:
                out = list(copy.rows())
        assert [(int(i), b) for i, b in out] == values
        # TRUNCATE answers with Postgres' tag.
        assert conn.execute("TRUNCATE copied_text").statusmessage == "TRUNCATE TABLE"
        assert conn.execute("SELECT count(*) FROM copied_text").fetchone() == (0,)


def test_set_reports_parameter_status_and_search_path_resolves(catalog):
    """After SET of a reported parameter the driver sees the new value (ParameterStatus),
    and search_path decides where psycopg's unqualified names resolve, per connection."""
    with psycopg.connect(catalog.pg_dsn, autocommit=True) as conn, \
            psycopg.connect(catalog.pg_dsn, autocommit=True) as other:
        conn.execute("SET application_name = 'notebook'")
        assert conn.info.parameter_status("application_name") == "notebook"
        conn.execute("SET search_path TO matrix, public")
        assert conn.info.parameter_status("search_path") == "matrix, public"
        assert conn.execute("SELECT current_schema()").fetchone() == ("matrix",)
        # matrix.events, unqualified (the first schema of the path that exists)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            other.execute("SELECT count(*) FROM events")
