//! The catalog survives a clean restart and a `kill -9`; local paths stay inside roots.

use tokio_postgres::error::SqlState;

use crate::common::TestServer;

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

/// Creates one table of each file format, a schema and a view, over pgwire.
async fn create_objects(server: &TestServer) -> Vec<(String, Vec<String>)> {
    let files = server.data_dir.join("files");
    std::fs::create_dir_all(files.join("events")).unwrap();
    std::fs::write(files.join("people.csv"), "id,name\n1,ann\n2,bob\n3,cy\n").unwrap();
    std::fs::write(
        files.join("events/part-0.json"),
        "{\"id\":1,\"kind\":\"click\"}\n{\"id\":2,\"kind\":\"view\"}\n",
    )
    .unwrap();
    let client = server.pg_client().await;
    client
        .batch_execute(
            "CREATE EXTERNAL TABLE people STORED AS CSV LOCATION 'people.csv' OPTIONS ('format.has_header' 'true');
             CREATE EXTERNAL TABLE events STORED AS JSON LOCATION 'events/';
             COPY (SELECT region, sum(revenue) AS revenue FROM sales GROUP BY region) TO 'region_revenue.parquet' STORED AS PARQUET;
             CREATE SCHEMA finance;
             CREATE EXTERNAL TABLE finance.region_revenue STORED AS PARQUET LOCATION 'region_revenue.parquet';
             CREATE VIEW big_regions AS SELECT region FROM finance.region_revenue WHERE revenue > 500000;",
        )
        .await
        .unwrap();
    let queries = [
        "SELECT id, name FROM people ORDER BY id",
        "SELECT id, kind FROM events ORDER BY id",
        "SELECT region, revenue FROM finance.region_revenue ORDER BY region",
        "SELECT region FROM big_regions ORDER BY region",
    ];
    let mut expected = Vec::new();
    for q in queries {
        let r = rows(&client, q).await;
        assert!(!r.is_empty(), "{q} returned nothing");
        expected.push((q.to_string(), r));
    }
    expected
}

async fn assert_same(server: &TestServer, expected: &[(String, Vec<String>)]) {
    let client = server.pg_client().await;
    for (q, want) in expected {
        assert_eq!(&rows(&client, q).await, want, "after restart: {q}");
    }
}

#[tokio::test]
async fn catalog_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn_in(dir.path(), &["--demo"]);
    let expected = create_objects(&server).await;
    assert_eq!(server.stop(), Some(0), "SIGTERM exits 0");
    let server = TestServer::spawn_in(dir.path(), &[]);
    assert_same(&server, &expected).await;
    // DROP persists too.
    let client = server.pg_client().await;
    client
        .batch_execute("DROP VIEW big_regions; DROP TABLE people")
        .await
        .unwrap();
    drop(server);
    let server = TestServer::spawn_in(dir.path(), &[]);
    let client = server.pg_client().await;
    let err = client
        .simple_query("SELECT * FROM people")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    assert_eq!(
        rows(&client, "SELECT count(*) FROM events").await,
        vec!["2"]
    );
}

#[tokio::test]
async fn catalog_survives_kill_9_right_after_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn_in(dir.path(), &["--demo"]);
    let expected = create_objects(&server).await;
    server.kill();
    let server = TestServer::spawn_in(dir.path(), &[]);
    assert_same(&server, &expected).await;
    assert_eq!(
        rows(&server.pg_client().await, "SELECT count(*) FROM sales").await,
        vec!["2000"]
    );
}

#[tokio::test]
async fn paths_outside_the_allowed_roots_are_refused() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    for sql in [
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '../../etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/insightflow-escape.csv' STORED AS CSV",
    ] {
        let err = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
        assert!(
            err.to_string().contains("allowed roots")
                || format!("{err:?}").contains("allowed roots")
        );
    }
    assert!(!std::path::Path::new("/tmp/insightflow-escape.csv").exists());
    // Extended protocol (psycopg, JDBC) takes the same path.
    let err = client
        .execute(
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
}

#[tokio::test]
async fn ddl_over_the_extended_protocol_persists() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_in(dir.path(), &["--demo"]);
    let client = server.pg_client().await;
    client
        .execute(
            "CREATE VIEW north AS SELECT * FROM sales WHERE region = 'North'",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "CREATE EXTERNAL TABLE sales_copy STORED AS CSV LOCATION 'demo/sales.csv' OPTIONS ('format.has_header' 'true')",
            &[],
        )
        .await
        .unwrap();
    drop(server);
    let server = TestServer::spawn_in(dir.path(), &[]);
    let client = server.pg_client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM north", &[])
        .await
        .unwrap()
        .get(0);
    let m: i64 = client
        .query_one("SELECT count(*) FROM sales_copy", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n > 0);
    assert_eq!(m, 2000);
}

#[tokio::test]
async fn duplicate_table_is_42p07_and_if_not_exists_is_quiet() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    let sql = "CREATE EXTERNAL TABLE sales STORED AS CSV LOCATION 'demo/sales.csv' OPTIONS ('format.has_header' 'true')";
    let err = client.simple_query(sql).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DUPLICATE_TABLE), "{err:?}");
    client
        .simple_query(&sql.replace(
            "CREATE EXTERNAL TABLE sales",
            "CREATE EXTERNAL TABLE IF NOT EXISTS sales",
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn http_health() {
    let server = TestServer::spawn();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
}

#[tokio::test]
async fn an_error_mid_script_reports_what_ran_before_it() {
    // As in Postgres, a syntax error anywhere stops the whole script before it runs;
    // an error while running stops it at that statement.
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    let err = client
        .batch_execute("CREATE VIEW before_error AS SELECT 1 AS x; SELECT * FROM nope; CREATE VIEW after_error AS SELECT 3 AS x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");
    assert_eq!(rows(&client, "SELECT x FROM before_error").await, vec!["1"]);
    let err = client
        .simple_query("SELECT x FROM after_error")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
}

#[tokio::test]
async fn insightflow_sql_runs_against_a_data_dir_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn_in(dir.path(), &["--demo"]);
    server
        .pg_client()
        .await
        .batch_execute("CREATE VIEW north AS SELECT * FROM sales WHERE region = 'North'")
        .await
        .unwrap();
    server.stop();
    let bin = env!("CARGO_BIN_EXE_insightflow");
    let out = std::process::Command::new(bin)
        .args(["sql", "--data-dir"])
        .arg(dir.path())
        .arg("SELECT count(*) AS n FROM north")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("488"), "{text}");
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        "CREATE SCHEMA s2; CREATE VIEW s2.v AS SELECT 7 AS seven; SELECT seven FROM s2.v;",
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["sql", "--data-dir"])
        .arg(dir.path())
        .arg("-f")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("CREATE VIEW") && text.contains("| 7"),
        "{text}"
    );
    // ... and what it created is there for the server.
    let server = TestServer::spawn_in(dir.path(), &[]);
    assert_eq!(
        rows(&server.pg_client().await, "SELECT seven FROM s2.v").await,
        vec!["7"]
    );
    let bad = std::process::Command::new(bin)
        .args(["sql", "--data-dir"])
        .arg(dir.path())
        .arg("SELEC 1")
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
