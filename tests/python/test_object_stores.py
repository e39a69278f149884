"""Files in object stores: an S3-compatible server (moto, run as a real HTTP server), an
Azure Blob server (Azurite, from npm), a Google Cloud Storage stand-in (gcs_fake.py) and
a plain HTTP file server, read through `CREATE EXTERNAL TABLE` from psql and queried from
ADBC (Flight SQL) and psycopg; the store's credentials are sealed at rest and the table
comes back after a restart."""

import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import base64
import pathlib

import boto3
from azure.storage.blob import BlobServiceClient
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import start_server
from gcs_fake import FakeGcs
from test_clients import flight_connect

ACCESS_KEY = "AKIAMOTOTESTKEY"
SECRET_KEY = "moto-secret-planted-6f1c"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free port, and a boto3 client for it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
    )
    deadline = time.time() + 30
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto S3 server did not start")
            time.sleep(0.2)
    client.endpoint = endpoint
    yield client
    proc.terminate()
    proc.wait(timeout=10)


AZURE_ACCOUNT = "insightflowtest"
# A made-up account key (Azurite takes any base64 key) whose text is planted below.
AZURE_KEY = base64.b64encode(b"azure-key-planted-2b7e" + bytes(42)).decode()
AZURITE = pathlib.Path(__file__).resolve().parents[1] / "node" / "node_modules" / ".bin" / "azurite-blob"


@pytest.fixture(scope="module")
def azure(tmp_path_factory):
    """An Azurite Blob server on a free port with one account, and the SDK's client."""
    port = free_port()
    proc = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--disableTelemetry",
         "--skipApiVersionCheck", "--location", str(tmp_path_factory.mktemp("azurite"))],
        env=dict(os.environ, AZURITE_ACCOUNTS=f"{AZURE_ACCOUNT}:{AZURE_KEY}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}/{AZURE_ACCOUNT}"
    client = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
        f"BlobEndpoint={endpoint};")
    deadline = time.time() + 30
    while True:
        try:
            list(client.list_containers())
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("Azurite did not start")
            time.sleep(0.2)
    client.endpoint = endpoint
    yield client
    proc.terminate()
    proc.wait(timeout=10)


def azure_options(azure):
    return (f"'azure.account_name' '{AZURE_ACCOUNT}', 'azure.access_key' '{AZURE_KEY}', "
            f"'azure.endpoint' '{azure.endpoint}', 'azure.allow_http' 'true'")


def psql(server, sql):
    return subprocess.run(
        ["psql", "-h", server.pg_host, "-p", str(server.pg_port), "-U", "admin", "-d", "insightflow",
         "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=dict(os.environ, PGPASSWORD=server.password), capture_output=True, text=True,
    )


def store_options(s3):
    return (f"'aws.endpoint' '{s3.endpoint}', 'aws.region' 'us-east-1', "
            f"'aws.access_key_id' '{ACCESS_KEY}', 'aws.secret_access_key' '{SECRET_KEY}'")


def put_parquet(s3, bucket, key, table):
    buf = io.BytesIO()
    pq.write_table(table, buf)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def test_s3_parquet_csv_and_json_from_psql_and_adbc(server, s3):
    bucket = f"lake-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    # Two Parquet files under one prefix: the table is the whole prefix.
    put_parquet(s3, bucket, "targets/part-0.parquet",
                pa.table({"region": ["North", "South"], "target": [100.0, 200.0]}))
    put_parquet(s3, bucket, "targets/part-1.parquet",
                pa.table({"region": ["East", "West"], "target": [300.0, 400.0]}))
    s3.put_object(Bucket=bucket, Key="managers.csv", Body=b"region,manager\nNorth,Ann\nSouth,Bob\nEast,Cy\nWest,Di\n")
    s3.put_object(Bucket=bucket, Key="notes.json",
                  Body=b'{"region":"North","note":"a"}\n{"region":"East","note":"b"}\n')

    out = psql(server, f"""
        CREATE EXTERNAL TABLE s3_targets STORED AS PARQUET LOCATION 's3://{bucket}/targets/'
          OPTIONS ({store_options(s3)});
        CREATE EXTERNAL TABLE s3_managers STORED AS CSV LOCATION 's3://{bucket}/managers.csv'
          OPTIONS ('format.has_header' 'true', {store_options(s3)});
        CREATE EXTERNAL TABLE s3_notes STORED AS JSON LOCATION 's3://{bucket}/notes.json'
          OPTIONS ({store_options(s3)});
    """)
    assert out.returncode == 0, out.stderr

    query = """
        SELECT s.region, m.manager, t.target, n.note, count(*) AS orders
        FROM sales s
        JOIN s3_targets t ON t.region = s.region
        JOIN s3_managers m ON m.region = s.region
        LEFT JOIN s3_notes n ON n.region = s.region
        GROUP BY 1, 2, 3, 4 ORDER BY 1
    """
    with flight_connect(server) as conn, conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    with psycopg.connect(server.pg_dsn) as conn:
        counts = dict(conn.execute("SELECT region, count(*) FROM sales GROUP BY 1").fetchall())
        assert conn.execute(query).fetchall() == rows
    assert [r[:4] for r in rows] == [
        ("East", "Cy", 300.0, "b"), ("North", "Ann", 100.0, "a"),
        ("South", "Bob", 200.0, None), ("West", "Di", 400.0, None),
    ]
    assert {r[0]: r[4] for r in rows} == counts

    # A file added to the prefix is part of the table once the listing (cached 1 s) is
    # read again.
    assert psql(server, "SELECT count(*), sum(target) FROM s3_targets").stdout.strip() == "4|1000.0"
    put_parquet(s3, bucket, "targets/part-2.parquet", pa.table({"region": ["Central"], "target": [5.0]}))
    time.sleep(1.5)
    assert psql(server, "SELECT count(*), sum(target) FROM s3_targets").stdout.strip() == "5|1005.0"

    # COPY ... TO the bucket writes a Parquet file other tools can read.
    out = psql(server, f"COPY (SELECT region, count(*) AS n FROM sales GROUP BY 1 ORDER BY 1) "
                       f"TO 's3://{bucket}/exports/by_region.parquet' STORED AS PARQUET")
    assert out.returncode == 0, out.stderr
    body = s3.get_object(Bucket=bucket, Key="exports/by_region.parquet")["Body"].read()
    exported = pq.read_table(io.BytesIO(body)).to_pydict()
    assert dict(zip(exported["region"], exported["n"])) == counts

    # The secret never comes back.
    shown = psql(server, "SHOW CREATE TABLE s3_targets").stdout + psql(
        server, "SELECT * FROM information_schema.tables").stdout
    assert SECRET_KEY not in shown and "s3_targets" in shown
    catalog = open(os.path.join(server.data_dir, "catalog.json")).read()
    assert SECRET_KEY not in catalog and f"s3://{bucket}/targets/" in catalog


def test_s3_errors_are_clear_and_the_server_keeps_serving(server, s3):
    missing = f"s3://no-such-bucket-{os.getpid()}/x.parquet"
    out = psql(server, f"CREATE EXTERNAL TABLE s3_missing STORED AS PARQUET LOCATION '{missing}' "
                       f"OPTIONS ({store_options(s3)})")
    assert out.returncode != 0
    assert "no-such-bucket" in out.stderr or "NoSuchBucket" in out.stderr, out.stderr
    out = psql(server, f"CREATE EXTERNAL TABLE s3_bad STORED AS PARQUET LOCATION 's3://b/x.parquet' "
                       f"OPTIONS ('aws.colour' 'red')")
    assert "unknown object-store option 'aws.colour'" in out.stderr, out.stderr
    out = psql(server, "CREATE EXTERNAL TABLE local_with_aws STORED AS CSV LOCATION 'x.csv' "
                       "OPTIONS ('aws.region' 'us-east-1')")
    assert "configure an object store, but the LOCATION is a local path" in out.stderr, out.stderr
    assert psql(server, "SELECT count(*) FROM sales").stdout.strip() == "2000"


def test_http_file_and_s3_table_survive_a_restart(s3, tmp_path):
    """A CSV served over plain HTTP and a Parquet file in S3; both tables are re-created
    from the catalog (the S3 credentials unsealed) when the server starts again."""
    bucket = f"restart-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    put_parquet(s3, bucket, "t.parquet", pa.table({"k": [1, 2, 3], "v": ["a", "b", "c"]}))

    files = tmp_path / "www"
    files.mkdir()
    (files / "cities.csv").write_text("city,population\nOslo,709000\nBergen,291000\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(files), **kwargs)

        def log_message(self, *args):
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    data_dir = tempfile.mkdtemp(dir=tmp_path)
    try:
        srv = start_server(data_dir)
        try:
            out = psql(srv, f"""
                CREATE EXTERNAL TABLE cities STORED AS CSV
                  LOCATION 'http://127.0.0.1:{web.server_port}/cities.csv'
                  OPTIONS ('format.has_header' 'true');
                CREATE EXTERNAL TABLE kv STORED AS PARQUET LOCATION 's3://{bucket}/t.parquet'
                  OPTIONS ({store_options(s3)});
            """)
            assert out.returncode == 0, out.stderr
            assert psql(srv, "SELECT sum(population) FROM cities").stdout.strip() == "1000000"
        finally:
            srv.proc.terminate()
            srv.proc.wait(timeout=20)
        srv = start_server(data_dir)
        try:
            assert psql(srv, "SELECT city FROM cities ORDER BY population DESC LIMIT 1").stdout.strip() == "Oslo"
            with flight_connect(srv) as conn, conn.cursor() as cur:
                cur.execute("SELECT string_agg(v, '' ORDER BY k) FROM kv")
                assert cur.fetchone() == ("abc",)
        finally:
            srv.proc.terminate()
            srv.proc.wait(timeout=20)
    finally:
        web.shutdown()


def test_azure_blob_tables_from_psql_and_adbc_survive_a_restart(azure, tmp_path):
    container = azure.create_container(f"lake-{os.getpid()}")
    buf = io.BytesIO()
    pq.write_table(pa.table({"region": ["North", "South", "East"], "target": [1.0, 2.0, 3.0]}), buf)
    container.upload_blob("targets/part-0.parquet", buf.getvalue())
    container.upload_blob("managers.csv", b"region,manager\nNorth,Ann\nSouth,Bob\n")
    base = f"az://{container.container_name}"

    data_dir = tempfile.mkdtemp(dir=tmp_path)
    srv = start_server(data_dir)
    try:
        out = psql(srv, f"""
            CREATE EXTERNAL TABLE az_targets STORED AS PARQUET LOCATION '{base}/targets/'
              OPTIONS ({azure_options(azure)});
            CREATE EXTERNAL TABLE az_managers STORED AS CSV LOCATION '{base}/managers.csv'
              OPTIONS ('format.has_header' 'true', {azure_options(azure)});
        """)
        assert out.returncode == 0, out.stderr
        query = """SELECT t.region, m.manager, t.target, count(s.region) AS orders
                   FROM az_targets t LEFT JOIN az_managers m ON m.region = t.region
                   LEFT JOIN sales s ON s.region = t.region
                   GROUP BY 1, 2, 3 ORDER BY 1"""
        with flight_connect(srv) as conn, conn.cursor() as cur:
            cur.execute(query)
            rows = cur.fetchall()
        with psycopg.connect(srv.pg_dsn) as conn:
            assert conn.execute(query).fetchall() == rows
            counts = dict(conn.execute("SELECT region, count(*) FROM sales GROUP BY 1").fetchall())
        assert [r[:3] for r in rows] == [("East", None, 3.0), ("North", "Ann", 1.0), ("South", "Bob", 2.0)]
        assert {r[0]: r[3] for r in rows} == {k: counts.get(k, 0) for k in ("East", "North", "South")}

        # COPY ... TO the container writes a file the Azure SDK reads back.
        out = psql(srv, f"COPY (SELECT region, target FROM az_targets ORDER BY region) "
                        f"TO '{base}/exports/targets.parquet' STORED AS PARQUET")
        assert out.returncode == 0, out.stderr
        body = container.download_blob("exports/targets.parquet").readall()
        assert pq.read_table(io.BytesIO(body)).to_pydict() == {
            "region": ["East", "North", "South"], "target": [3.0, 1.0, 2.0]}

        # A wrong key is refused by the server, and the message says so.
        out = psql(srv, f"CREATE EXTERNAL TABLE az_bad STORED AS CSV LOCATION '{base}/managers.csv' "
                        f"OPTIONS ('azure.account_name' '{AZURE_ACCOUNT}', "
                        f"'azure.access_key' '{base64.b64encode(bytes(64)).decode()}', "
                        f"'azure.endpoint' '{azure.endpoint}', 'azure.allow_http' 'true')")
        assert out.returncode != 0 and "403" in out.stderr, out.stderr

        shown = psql(srv, "SHOW CREATE TABLE az_targets").stdout
        catalog = open(os.path.join(data_dir, "catalog.json")).read()
        assert AZURE_KEY not in shown + catalog and f"{base}/targets/" in catalog
    finally:
        srv.proc.terminate()
        srv.proc.wait(timeout=20)

    # The key is unsealed at start-up and the tables read again.
    srv = start_server(data_dir)
    try:
        assert psql(srv, "SELECT sum(target) FROM az_targets").stdout.strip() == "6.0"
        assert psql(srv, "SELECT manager FROM az_managers WHERE region = 'South'").stdout.strip() == "Bob"
    finally:
        srv.proc.terminate()
        srv.proc.wait(timeout=20)


def test_gcs_tables_through_object_stores_gcs_client(tmp_path):
    """gs:// over a GCS stand-in (see gcs_fake.py): the service-account JSON's
    `gcs_base_url` and `disable_oauth` point object_store's GCS client at it."""
    gcs = FakeGcs()
    planted = "gcs-key-id-planted-91d3"
    account = json.dumps({"gcs_base_url": gcs.url, "disable_oauth": True, "client_email": "",
                          "private_key": "", "private_key_id": planted})
    options = f"'gcp.service_account_key' '{account}', 'gcp.allow_http' 'true'"
    buf = io.BytesIO()
    pq.write_table(pa.table({"region": ["North", "South"], "target": [10.0, 20.0]}), buf)
    gcs.put("lake", "targets/part-0.parquet", buf.getvalue())
    buf = io.BytesIO()
    pq.write_table(pa.table({"region": ["East"], "target": [30.0]}), buf)
    gcs.put("lake", "targets/part-1.parquet", buf.getvalue())
    gcs.put("lake", "managers.csv", b"region,manager\nNorth,Ann\nEast,Cy\n")

    data_dir = tempfile.mkdtemp(dir=tmp_path)
    srv = start_server(data_dir)
    try:
        out = psql(srv, f"""
            CREATE EXTERNAL TABLE gs_targets STORED AS PARQUET LOCATION 'gs://lake/targets/'
              OPTIONS ({options});
            CREATE EXTERNAL TABLE gs_managers STORED AS CSV LOCATION 'gs://lake/managers.csv'
              OPTIONS ('format.has_header' 'true', {options});
        """)
        assert out.returncode == 0, out.stderr
        query = """SELECT t.region, m.manager, t.target FROM gs_targets t
                   LEFT JOIN gs_managers m ON m.region = t.region ORDER BY 1"""
        with flight_connect(srv) as conn, conn.cursor() as cur:
            cur.execute(query)
            rows = cur.fetchall()
        with psycopg.connect(srv.pg_dsn) as conn:
            assert conn.execute(query).fetchall() == rows
        assert rows == [("East", "Cy", 30.0), ("North", "Ann", 10.0), ("South", None, 20.0)]

        out = psql(srv, "COPY (SELECT region FROM gs_targets ORDER BY 1) "
                        "TO 'gs://lake/exports/regions.csv' STORED AS CSV")
        assert out.returncode == 0, out.stderr
        assert gcs.get("lake", "exports/regions.csv").decode().split() == ["region", "East", "North", "South"]
        # The files were read by listing the prefix and ranged GETs, as from GCS.
        assert any(m == "GET" and "list-type=2" in p for m, p in gcs.requests)

        shown = psql(srv, "SHOW CREATE TABLE gs_targets").stdout
        catalog = open(os.path.join(data_dir, "catalog.json")).read()
        assert planted not in shown + catalog and "gs://lake/targets/" in catalog
    finally:
        srv.proc.terminate()
        srv.proc.wait(timeout=20)
        gcs.stop()
