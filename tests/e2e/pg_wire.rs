//! The Postgres wire protocol through tokio-postgres: simple and extended query,
//! binary parameters and results, portals, errors with SQLSTATEs, auth.

use std::io::Write;
use std::time::SystemTime;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

use crate::common::TestServer;

fn rows_of(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn simple_query_runs_several_statements_and_empty_queries() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    let messages = client
        .simple_query("SELECT 1 AS a; SELECT 'x' AS b, 2 AS c")
        .await
        .unwrap();
    assert_eq!(
        rows_of(&messages),
        vec![
            vec![Some("1".into())],
            vec![Some("x".into()), Some("2".into())]
        ]
    );
    let complete = messages
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
        .count();
    assert_eq!(complete, 2);
    // Grafana's health check and psql's "-- ping" send empty queries.
    assert!(rows_of(&client.simple_query("").await.unwrap()).is_empty());
    assert!(rows_of(&client.simple_query(";").await.unwrap()).is_empty());
    client
        .batch_execute("BEGIN; SELECT 1; COMMIT")
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; SAVEPOINT s1; ROLLBACK TO SAVEPOINT s1; ROLLBACK")
        .await
        .unwrap();
}

#[tokio::test]
async fn extended_query_with_binary_parameters_and_results() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    // Parameter types inferred by the server (Parse without types).
    let row = client
        .query_one("SELECT $1::BIGINT + 1 AS n", &[&41i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>("n"), 42);
    let rows = client
        .query("SELECT order_id FROM sales WHERE region = $1 AND quantity > $2 ORDER BY order_id LIMIT 3", &[&"North", &4i32])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    // Declared parameter types.
    let stmt = client
        .prepare_typed("SELECT $1 AS t", &[Type::TEXT])
        .await
        .unwrap();
    assert_eq!(
        client
            .query_one(&stmt, &[&"hello"])
            .await
            .unwrap()
            .get::<_, String>(0),
        "hello"
    );
    // A named statement used twice.
    let stmt = client
        .prepare("SELECT count(*) AS c FROM sales WHERE region = $1")
        .await
        .unwrap();
    let north: i64 = client.query_one(&stmt, &[&"North"]).await.unwrap().get(0);
    let south: i64 = client.query_one(&stmt, &[&"South"]).await.unwrap().get(0);
    assert!(north > 0 && south > 0);
    let total: i64 = client
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 2000);
}

#[tokio::test]
async fn binary_results_of_common_types() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    let row = client
        .query_one(
            "SELECT true AS b, CAST(7 AS SMALLINT) AS i2, CAST(8 AS INT) AS i4, CAST(9 AS BIGINT) AS i8, \
             CAST(1.5 AS REAL) AS f4, CAST(2.25 AS DOUBLE) AS f8, 'text' AS t, \
             DATE '2024-02-29' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("i2"), 7);
    assert_eq!(row.get::<_, i32>("i4"), 8);
    assert_eq!(row.get::<_, i64>("i8"), 9);
    assert_eq!(row.get::<_, f32>("f4"), 1.5);
    assert_eq!(row.get::<_, f64>("f8"), 2.25);
    assert_eq!(row.get::<_, String>("t"), "text");
    let ts: SystemTime = row.get("ts");
    let secs = ts.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs, 1704164645);
    let bytes = client
        .query_one("SELECT CAST('abc' AS BYTEA) AS x", &[])
        .await
        .unwrap();
    assert_eq!(bytes.get::<_, Vec<u8>>("x"), b"abc".to_vec());
    let nulls = client
        .query_one("SELECT CAST(NULL AS INT) AS n", &[])
        .await
        .unwrap();
    assert_eq!(nulls.get::<_, Option<i32>>("n"), None);
}

#[tokio::test]
async fn portal_with_row_limit_suspends_and_resumes() {
    let server = TestServer::spawn();
    let mut client = server.pg_client().await;
    let tx = client.transaction().await.unwrap();
    let portal = tx
        .bind("SELECT order_id FROM sales ORDER BY order_id", &[])
        .await
        .unwrap();
    let first = tx.query_portal(&portal, 10).await.unwrap();
    let second = tx.query_portal(&portal, 10).await.unwrap();
    assert_eq!(first.len(), 10);
    assert_eq!(second.len(), 10);
    assert_eq!(first[0].get::<_, i32>(0), 1);
    assert_eq!(
        second[0].get::<_, i32>(0),
        11,
        "the portal resumes where it stopped"
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn errors_carry_sqlstates_and_the_session_keeps_working() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    let cases: [(&str, &SqlState); 5] = [
        ("SELEC 1", &SqlState::SYNTAX_ERROR),
        ("SELECT * FROM no_such_table", &SqlState::UNDEFINED_TABLE),
        (
            "SELECT no_such_column FROM sales",
            &SqlState::UNDEFINED_COLUMN,
        ),
        ("SELECT no_such_function(1)", &SqlState::UNDEFINED_FUNCTION),
        ("SELECT 1 / 0", &SqlState::DIVISION_BY_ZERO),
    ];
    for (sql, state) in cases {
        let simple = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(simple.code(), Some(state), "simple: {sql}: {simple:?}");
        let extended = client.query(sql, &[]).await.expect_err(sql);
        assert_eq!(
            extended.code(),
            Some(state),
            "extended: {sql}: {extended:?}"
        );
        let ok: i64 = client
            .query_one("SELECT count(*) FROM products", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ok, 8, "the session works after {sql}");
    }
    let err = client
        .simple_query("SELECT CAST('abc' AS INT)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_refused_with_28p01() {
    let server = TestServer::spawn();
    for (user, password) in [("admin", "wrong"), ("nobody", "x")] {
        let err = server
            .pg_client_as(user, password)
            .await
            .expect_err("must be refused");
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{user}: {err:?}"
        );
    }
    server
        .pg_client()
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
}

#[tokio::test]
async fn version_and_server_settings_say_postgres_16() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    for sql in ["SELECT version()", "SELECT pg_catalog.version()"] {
        let v: String = client.query_one(sql, &[]).await.unwrap().get(0);
        assert!(
            v.starts_with("PostgreSQL 16.") && v.contains("InsightFlow"),
            "{v}"
        );
    }
    let rows = rows_of(&client.simple_query("SHOW server_version").await.unwrap());
    assert!(
        rows[0][0].as_deref().unwrap().starts_with("16."),
        "{rows:?}"
    );
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, "insightflow");
    client
        .batch_execute("SET application_name = 'e2e'")
        .await
        .unwrap();
    client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
}

#[tokio::test]
async fn garbage_bytes_on_either_port_do_not_stop_the_server() {
    let mut server = TestServer::spawn();
    for addr in [server.pg, server.flight, server.http] {
        for payload in [
            &b"\x00\x00\x00\x08\x04\xd2\x16\x2f garbage"[..],
            &[0xff; 4096][..],
            b"Q\x00\x00\x00\x03",
        ] {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                let _ = s.write_all(payload);
            }
        }
    }
    // A started session that then sends a broken message.
    let client = server.pg_client().await;
    client.simple_query("SELECT 1").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(server.is_running());
    let n: i64 = server
        .pg_client()
        .await
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2000);
}

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let started = std::time::Instant::now();
    // Minutes of work if nothing stops it.
    let err = client
        .simple_query("SELECT sum(value) FROM generate_series(1, 20000000000)")
        .await
        .expect_err("the query is canceled");
    canceller.await.unwrap().unwrap();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // The same connection keeps working, over both protocols.
    client.simple_query("SELECT 1").await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM products", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 8);
}

#[tokio::test]
async fn statement_timeout_stops_a_streaming_query() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = client
        .simple_query("SELECT sum(value) FROM generate_series(1, 20000000000)")
        .await
        .expect_err("the query times out");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Short queries still run under the timeout; turning it off works too.
    let n: i64 = client
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2000);
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    client.simple_query("SELECT 1").await.unwrap();
}
