"""Real Python clients against the real server: psycopg 3, asyncpg, SQLAlchemy, pandas-free
ADBC Flight SQL, and psql, all asking the same question of the demo data."""

import asyncio
import datetime
import decimal
import os
import subprocess

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import asyncpg
import psycopg
import pytest
import sqlalchemy

QUESTION = "SELECT region, count(*) AS n, sum(revenue) AS revenue FROM sales GROUP BY region ORDER BY region"
EXPECTED = [
    ("East", 512, 557878.5),
    ("North", 488, 521615.5),
    ("South", 495, 539455.0),
    ("West", 505, 453213.0),
]


def normalize(rows):
    return [(str(r[0]), int(r[1]), round(float(r[2]), 2)) for r in rows]


def test_psycopg_text_binary_and_parameters(server):
    with psycopg.connect(server.pg_dsn) as conn:
        assert normalize(conn.execute(QUESTION).fetchall()) == EXPECTED
        with conn.cursor(binary=True) as cur:
            cur.execute(QUESTION)
            assert normalize(cur.fetchall()) == EXPECTED
            cur.execute("SELECT count(*) FROM sales WHERE region = %s AND quantity >= %s", ("North", 3))
            (n,) = cur.fetchone()
            assert 0 < n < 488
        # Prepared on the server (psycopg prepares after repeated use; force it).
        for region in ["East", "West"]:
            row = conn.execute("SELECT count(*) FROM sales WHERE region = %s", (region,), prepare=True).fetchone()
            assert row[0] in (512, 505)


def test_psycopg_startup_parameters(server):
    with psycopg.connect(server.pg_dsn) as conn:
        status = conn.info.parameter_status
        assert status("server_version").startswith("16.")
        assert status("DateStyle") == "ISO, MDY"
        assert status("client_encoding") == "UTF8"
        assert status("standard_conforming_strings") == "on"
        assert status("integer_datetimes") == "on"
        assert status("TimeZone")
        assert status("is_superuser") == "on"
        assert conn.info.server_version >= 160000


def test_psycopg_binary_result_types(server):
    with psycopg.connect(server.pg_dsn) as conn, conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT CAST(12.34 AS DECIMAL(10,2)) AS num, DATE '2024-02-29' AS d, "
            "TIMESTAMP '2024-01-02 03:04:05' AS ts, INTERVAL '1 day 2 hours' AS iv, "
            "CAST('ab' AS BYTEA) AS b, CAST(3 AS SMALLINT) AS s, true AS t"
        )
        num, d, ts, iv, b, s, t = cur.fetchone()
        assert num == decimal.Decimal("12.34")
        assert d == datetime.date(2024, 2, 29)
        assert ts == datetime.datetime(2024, 1, 2, 3, 4, 5)
        assert iv == datetime.timedelta(days=1, hours=2)
        assert bytes(b) == b"ab"
        assert s == 3 and t is True


def test_psycopg_errors_keep_the_connection_usable(server):
    with psycopg.connect(server.pg_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("SELEC 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM nope")
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_psycopg_prepared_statements_survive_drop_and_deallocate(server):
    """psycopg prepares a query it ran 5 times and, after a DROP, sends DEALLOCATE ALL and
    prepares again (as the TPC-H q15 script does); DEALLOCATE <name> drops a statement
    prepared over the protocol."""
    sql = "SELECT count(*) FROM sales WHERE region = %s"
    with psycopg.connect(server.pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE VIEW prepared_east AS SELECT * FROM sales WHERE region = 'East'")
        for _ in range(7):
            assert conn.execute(sql, ("East",)).fetchone() == (512,)
        assert conn.execute("SELECT count(*) FROM prepared_east").fetchone() == (512,)
        conn.execute("DROP VIEW prepared_east")
        for _ in range(7):
            assert conn.execute(sql, ("West",)).fetchone() == (505,)
        conn.execute("DEALLOCATE ALL")
        assert conn.execute(sql, ("North",)).fetchone() == (488,)

        pgconn = conn.pgconn
        assert pgconn.prepare(b"by_hand", b"SELECT 42").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert pgconn.exec_prepared(b"by_hand", []).get_value(0, 0) == b"42"
        conn.execute("DEALLOCATE by_hand")
        gone = pgconn.exec_prepared(b"by_hand", [])
        assert gone.status == psycopg.pq.ExecStatus.FATAL_ERROR
        with pytest.raises(psycopg.errors.DatabaseError):
            conn.execute("DEALLOCATE never_prepared")
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_psycopg_wrong_password(server):
    dsn = server.pg_dsn.replace(f"password={server.password}", "password=wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn)


def test_asyncpg(server):
    async def run():
        conn = await asyncpg.connect(
            host=server.pg_host, port=server.pg_port, user="admin",
            password=server.password, database="insightflow",
        )
        try:
            rows = await conn.fetch(QUESTION)
            assert normalize([tuple(r) for r in rows]) == EXPECTED
            n = await conn.fetchval("SELECT count(*) FROM sales WHERE region = $1", "South")
            assert n == 495
            stmt = await conn.prepare("SELECT order_id FROM sales WHERE quantity = $1 ORDER BY order_id LIMIT 2")
            assert len(await stmt.fetch(5)) == 2
        finally:
            await conn.close()

    asyncio.run(run())


def test_sqlalchemy_create_engine_and_query(server):
    url = f"postgresql+psycopg://admin:{server.password}@{server.pg_host}:{server.pg_port}/insightflow"
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(QUESTION)).fetchall()
        assert normalize(rows) == EXPECTED
        n = conn.execute(sqlalchemy.text("SELECT count(*) FROM sales WHERE region = :r"), {"r": "West"}).scalar()
        assert n == 505
    engine.dispose()


def flight_connect(server, password=None):
    return flight_sql.connect(
        f"grpc://{server.flight}",
        autocommit=True,
        db_kwargs={
            "username": "admin",
            "password": password or server.password,
        },
    )


def test_adbc_flight_sql(server):
    with flight_connect(server) as conn, conn.cursor() as cur:
        cur.execute(QUESTION)
        assert normalize(cur.fetchall()) == EXPECTED
        cur.execute("SELECT count(*) AS n FROM sales WHERE region = ?", parameters=("East",))
        assert cur.fetchone()[0] == 512
        cur.execute("SELECT * FROM products ORDER BY product_id")
        table = cur.fetch_arrow_table()
        assert table.num_rows == 8
        assert "unit_price" in table.column_names


def test_adbc_runs_catalog_statements_through_execute(server):
    """ADBC's DB-API prepares every statement: CREATE and DROP run when executed."""
    with flight_connect(server) as conn, conn.cursor() as cur:
        cur.execute("CREATE VIEW adbc_east AS SELECT * FROM sales WHERE region = 'East'")
        cur.execute("SELECT count(*) FROM adbc_east")
        assert cur.fetchone()[0] == 512
        cur.execute("DROP VIEW adbc_east")
        with pytest.raises(adbc_driver_manager.Error, match="adbc_east"):
            cur.execute("SELECT count(*) FROM adbc_east")


def test_adbc_flight_sql_metadata(server):
    with flight_connect(server) as conn:
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        tables = {
            t["table_name"]
            for c in objects
            for s in (c["catalog_db_schemas"] or [])
            for t in (s["db_schema_tables"] or [])
        }
        assert {"sales", "customers", "products"} <= tables
        schema = conn.adbc_get_table_schema("sales", db_schema_filter="public")
        assert "revenue" in schema.names
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "InsightFlow", info
        assert info["vendor_version"], info


def test_adbc_wrong_password(server):
    with pytest.raises(adbc_driver_manager.Error):
        with flight_connect(server, password="wrong") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")


def test_psql_gets_the_same_answer(server):
    out = subprocess.run(
        ["psql", "-h", server.pg_host, "-p", str(server.pg_port), "-U", "admin", "-d", "insightflow",
         "-X", "-A", "-t", "-F", ",", "-c", QUESTION],
        env=dict(os.environ, PGPASSWORD=server.password), capture_output=True, text=True, check=True,
    ).stdout
    rows = [tuple(line.split(",")) for line in out.strip().splitlines()]
    assert normalize(rows) == EXPECTED


def test_profile_from_psycopg_and_adbc(server):
    sql = "SELECT column_name, null_count, distinct_count, inferred_type FROM profile('customers') ORDER BY column_name"
    with psycopg.connect(server.pg_dsn) as conn:
        over_pg = [tuple(r) for r in conn.execute(sql).fetchall()]
    with flight_connect(server) as conn, conn.cursor() as cur:
        cur.execute(sql)
        over_flight = [tuple(r) for r in cur.fetchall()]
    assert over_pg == over_flight
    by_name = {r[0]: r for r in over_pg}
    assert by_name["region"][2] == 4
    assert by_name["signup_date"][3] == "date"
    assert by_name["customer_id"][2] == 40


def test_quality_from_psycopg_and_adbc(server):
    sql = "SELECT check_name, column_name, severity, affected_rows FROM quality('(SELECT region FROM customers)') ORDER BY check_name"
    with psycopg.connect(server.pg_dsn) as conn:
        over_pg = [tuple(r) for r in conn.execute(sql).fetchall()]
    with flight_connect(server) as conn, conn.cursor() as cur:
        cur.execute(sql)
        over_flight = [tuple(r) for r in cur.fetchall()]
    assert over_pg == over_flight
    assert ("duplicate_rows", None, "high", 36) in over_pg


def test_anomalies_and_forecast_from_psycopg_and_adbc(server):
    queries = [
        "SELECT ts, value, score FROM anomalies('sales', 'revenue', 'order_date') ORDER BY ts",
        "SELECT ts, forecast, lower, upper FROM forecast('sales', 'order_date', 'revenue', 7) ORDER BY ts",
    ]
    for sql in queries:
        with psycopg.connect(server.pg_dsn) as conn:
            over_pg = conn.execute(sql).fetchall()
        with flight_connect(server) as conn, conn.cursor() as cur:
            cur.execute(sql)
            over_flight = cur.fetchall()
        assert len(over_pg) == len(over_flight) > 0, sql
        assert [r[0] for r in over_pg] == [r[0] for r in over_flight], sql
    with psycopg.connect(server.pg_dsn) as conn:
        rows = conn.execute(queries[1]).fetchall()
    assert len(rows) == 7
    assert rows[0][0] == datetime.datetime(2026, 1, 1)
    assert all(lo <= f <= hi for _, f, lo, hi in rows)


def test_ask_from_psycopg_and_adbc(server):
    """ask() answers over both protocols; psycopg receives the generated SQL as a notice."""
    question = "SELECT * FROM ask('how many orders in the West region')"
    notices = []
    with psycopg.connect(server.pg_dsn) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert conn.execute(question).fetchall() == [(505,)]
        sql = conn.execute("SELECT ask_sql('how many orders in the West region')").fetchone()[0]
    assert notices == [f"ask: {sql}"]
    assert sql == "SELECT count(*) AS count FROM sales WHERE region = 'West' LIMIT 1000"
    with flight_connect(server) as conn, conn.cursor() as cur:
        cur.execute(question)
        assert cur.fetchall() == [(505,)]
        cur.execute("SELECT * FROM ask('average unit price by category') ORDER BY category")
        rows = cur.fetchall()
    assert [r[0] for r in rows] == ["Electronics", "Furniture", "Office"]
    assert rows[2][1] == 3.0


def test_psycopg_copy_in_and_out(server):
    """psycopg's cursor.copy(): rows in through COPY FROM STDIN, back out through COPY TO STDOUT."""
    with psycopg.connect(server.pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE copied (id BIGINT, label TEXT, at DATE)")
        with conn.cursor() as cur:
            with cur.copy("COPY copied (id, label, at) FROM STDIN") as copy:
                for i in range(1000):
                    copy.write_row((i, f"row {i}" if i % 10 else None, "2025-01-02"))
        assert conn.execute("SELECT count(*), count(label), min(at) FROM copied").fetchone() == (
            1000, 900, datetime.date(2025, 1, 2))
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, label FROM copied WHERE id < 3 ORDER BY id) TO STDOUT") as copy:
                rows = [tuple(r) for r in copy.rows()]
        assert rows == [("0", None), ("1", "row 1"), ("2", "row 2")]


def test_adbc_ingest_modes(server):
    """adbc_ingest: create, append, replace and create_append land in managed tables."""
    import pyarrow as pa

    first = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "city": ["Oslo", "Bergen", None]})
    more = pa.table({"id": pa.array([4], pa.int64()), "city": ["Tromsø"]})
    with flight_connect(server) as conn, conn.cursor() as cur:
        assert cur.adbc_ingest("ingested", first, mode="create") == 3
        with pytest.raises(adbc_driver_manager.Error):
            cur.adbc_ingest("ingested", first, mode="create")  # exists already
        assert cur.adbc_ingest("ingested", more, mode="append") == 1
        cur.execute("SELECT id, city FROM ingested ORDER BY id")
        assert cur.fetchall() == [(1, "Oslo"), (2, "Bergen"), (3, None), (4, "Tromsø")]
        replaced = pa.table({"x": pa.array([1.5, 2.5])})
        assert cur.adbc_ingest("ingested", replaced, mode="replace") == 2
        cur.execute("SELECT sum(x) FROM ingested")
        assert cur.fetchone()[0] == 4.0
        assert cur.adbc_ingest("fresh", more, mode="create_append") == 1
        assert cur.adbc_ingest("fresh", more, mode="create_append") == 1
        with pytest.raises(adbc_driver_manager.Error):
            cur.adbc_ingest("nowhere", more, mode="append")
    # What Flight ingested is there for pgwire clients too.
    with psycopg.connect(server.pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM fresh").fetchone()[0] == 2


def test_adbc_ingest_of_one_large_batch(server):
    """A record batch goes as one Flight message: 500,000 rows (~12 MB) in one batch."""
    import pyarrow as pa

    n = 500_000
    big = pa.table({"id": pa.array(range(n), pa.int64()), "x": pa.array([0.5] * n),
                    "note": pa.array(["row"] * n)}).combine_chunks()
    assert big.nbytes > 8 << 20
    with flight_connect(server) as conn, conn.cursor() as cur:
        assert cur.adbc_ingest("one_big_batch", big, mode="create") == n
        cur.execute("SELECT count(*), sum(id) FROM one_big_batch")
        assert cur.fetchone() == (n, n * (n - 1) // 2)


def test_pandas_to_sql_and_read_sql(server):
    """pandas through SQLAlchemy: to_sql creates a managed table and inserts, read_sql reads it back."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(server.sqlalchemy_url)
    frame = pd.DataFrame({
        "id": [1, 2, 3],
        "name": ["a", "b", None],
        "x": [1.5, None, 3.0],
        "ok": [True, False, True],
        "ts": pd.to_datetime(["2025-01-01 00:00", "2025-01-02 00:00", "2025-01-03 12:30"]),
    })
    frame.to_sql("frame", engine, index=False, method="multi")
    frame.to_sql("frame", engine, index=False, method="multi", if_exists="append")
    back = pd.read_sql("SELECT * FROM frame ORDER BY id, ts", engine)
    assert len(back) == 6
    assert back["id"].tolist() == [1, 1, 2, 2, 3, 3]
    assert back["x"].isna().sum() == 2
    assert back["ts"].iloc[-1] == pd.Timestamp("2025-01-03 12:30")
    engine.dispose()


def test_excel_tables(server):
    """STORED AS EXCEL: sheet and range options, header row, a type per column; survives restart via the catalog."""
    import openpyxl

    path = os.path.join(server.data_dir, "files", "budget.xlsx")
    book = openpyxl.Workbook()
    first = book.active
    first.title = "Notes"
    first.append(["nothing to see"])
    sheet = book.create_sheet("Q1")
    sheet.append(["title row, not data"])
    sheet.append(["team", "amount", "headcount", "start", "active"])
    sheet.append(["Sales", 1200.5, 4, datetime.date(2025, 1, 6), True])
    sheet.append(["Ops", 800, 2, datetime.date(2025, 2, 3), False])
    sheet.append(["R&D", None, 7, datetime.date(2025, 3, 3), True])
    book.save(path)
    with psycopg.connect(server.pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE EXTERNAL TABLE budget STORED AS EXCEL LOCATION 'budget.xlsx' "
            "OPTIONS ('sheet' 'Q1', 'range' 'A2:E5')")
        rows = conn.execute("SELECT team, amount, headcount, start, active FROM budget ORDER BY team").fetchall()
        assert rows == [
            ("Ops", 800.0, 2, datetime.date(2025, 2, 3), False),
            ("R&D", None, 7, datetime.date(2025, 3, 3), True),
            ("Sales", 1200.5, 4, datetime.date(2025, 1, 6), True),
        ]
        types = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'budget'").fetchall())
        assert types == {"team": "text", "amount": "double precision", "headcount": "bigint", "start": "date",
                         "active": "boolean"}
        with pytest.raises(psycopg.Error, match="no sheet 'Q9'"):
            conn.execute("CREATE EXTERNAL TABLE nope STORED AS EXCEL LOCATION 'budget.xlsx' OPTIONS ('sheet' 'Q9')")


def test_remote_sources_from_psql_and_adbc(server, tmp_path):
    """A PostgreSQL table, a MariaDB table and an HTTP JSON API, created from psql and
    joined with the demo data from ADBC (Flight SQL)."""
    import http.server
    import json
    import threading

    tag = f"py_{os.getpid()}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as pg:
        pg.execute(f"DROP TABLE IF EXISTS {tag}_targets")
        pg.execute(f"CREATE TABLE {tag}_targets (region text, target float8)")
        pg.execute(f"INSERT INTO {tag}_targets VALUES ('North', 1.0), ('South', 2.0), ('East', 3.0), ('West', 4.0)")
    subprocess.run(
        ["mariadb", "-h", "127.0.0.1", "-u", "root", "test", "-e",
         f"DROP TABLE IF EXISTS {tag}_managers; CREATE TABLE {tag}_managers (region VARCHAR(10), manager VARCHAR(20));"
         f"INSERT INTO {tag}_managers VALUES ('North','Ann'),('South','Bob'),('East','Cy'),('West','Di');"],
        check=True,
    )

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"items": [{"region": r, "open_tickets": n}
                                         for r, n in [("North", 3), ("South", 1), ("East", 4), ("West", 1)]]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        script = f"""
            CREATE EXTERNAL TABLE py_targets STORED AS POSTGRES
              LOCATION 'postgres://postgres@127.0.0.1:5432/test'
              OPTIONS ('table' 'public.{tag}_targets', 'sslmode' 'disable');
            CREATE EXTERNAL TABLE py_managers STORED AS MYSQL
              LOCATION 'mysql://root@127.0.0.1:3306/test'
              OPTIONS ('table' '{tag}_managers', 'sslmode' 'disabled');
            CREATE EXTERNAL TABLE py_tickets STORED AS HTTP
              LOCATION 'http://127.0.0.1:{api.server_port}/tickets' OPTIONS ('json_path' 'items');
        """
        subprocess.run(
            ["psql", "-h", server.pg_host, "-p", str(server.pg_port), "-U", "admin", "-d", "insightflow",
             "-X", "-v", "ON_ERROR_STOP=1", "-c", script],
            env=dict(os.environ, PGPASSWORD=server.password), capture_output=True, text=True, check=True,
        )
        query = """
            SELECT s.region, m.manager, t.target, k.open_tickets, count(*) AS orders
            FROM sales s
            JOIN py_targets t ON t.region = s.region
            JOIN py_managers m ON m.region = s.region
            JOIN py_tickets k ON k.region = s.region
            GROUP BY 1, 2, 3, 4 ORDER BY 1
        """
        with flight_connect(server) as conn, conn.cursor() as cur:
            cur.execute(query)
            rows = cur.fetchall()
        with psycopg.connect(server.pg_dsn) as conn:
            expected_counts = dict(conn.execute("SELECT region, count(*) FROM sales GROUP BY 1").fetchall())
        assert [r[:4] for r in rows] == [
            ("East", "Cy", 3.0, 4), ("North", "Ann", 1.0, 3), ("South", "Bob", 2.0, 1), ("West", "Di", 4.0, 1),
        ]
        assert {r[0]: r[4] for r in rows} == expected_counts
    finally:
        api.shutdown()
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as pg:
            pg.execute(f"DROP TABLE IF EXISTS {tag}_targets")
        subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "test", "-e",
                        f"DROP TABLE IF EXISTS {tag}_managers"], check=True)
