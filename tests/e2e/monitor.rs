//! What operators see: the audit log and `system.query_log` for each statement kind
//! (with secrets redacted), `system.sessions`, `/metrics` and `/ready`, all through
//! the real server and real clients.

use std::collections::HashMap;

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tokio_postgres::SimpleQueryMessage;
use tonic::transport::Channel;

use crate::common::{http_get, TestServer, ADMIN_PASSWORD};

const SECRET: &str = "carol-s3cret-pw";

/// The rows of a simple query as maps from column name to text.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<HashMap<String, Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), row.get(i).map(str::to_string)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn get<'a>(row: &'a HashMap<String, Option<String>>, column: &str) -> &'a str {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .as_deref()
        .unwrap_or("")
}

async fn flight_rows(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> usize {
    let info = client.execute(sql.to_string(), None).await.expect(sql);
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<_> = client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

/// The value of one Prometheus sample, like `insightflow_queries_total{protocol="pg",status="ok"}`.
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn every_statement_is_audited_with_secrets_redacted_and_queryable() {
    let mut server = TestServer::spawn();
    let admin = server.pg_client().await;
    admin
        .batch_execute(&format!("CREATE USER carol WITH PASSWORD '{SECRET}'"))
        .await
        .unwrap();
    admin
        .simple_query("SELECT count(*) FROM sales")
        .await
        .unwrap();
    admin
        .batch_execute("CREATE TABLE audit_t (id INT); INSERT INTO audit_t VALUES (1), (2), (3)")
        .await
        .unwrap();
    let err = admin
        .simple_query("SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    // Extended protocol, with a parameter.
    let extended = admin
        .query("SELECT id FROM audit_t WHERE id > $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(extended.len(), 2);
    admin
        .simple_query("SELECT * FROM ask('total revenue by region')")
        .await
        .unwrap();

    let carol = server.pg_client_as("carol", SECRET).await.unwrap();
    carol.simple_query("SELECT 42").await.unwrap();
    let mut flight = server.flight_client_as("admin", ADMIN_PASSWORD).await;
    assert_eq!(flight_rows(&mut flight, "SELECT * FROM products").await, 8);

    // A Flight statement is recorded when the server lets go of its stream, which may
    // be a moment after the client has read the end.
    let mut log = Vec::new();
    for _ in 0..50 {
        log = rows(&admin, "SELECT * FROM system.query_log ORDER BY time").await;
        if log.iter().any(|r| get(r, "protocol") == "flight") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let find = |needle: &str| {
        log.iter()
            .find(|r| get(r, "statement").contains(needle))
            .unwrap_or_else(|| panic!("no record of {needle}: {log:#?}"))
    };
    // DDL with a password: recorded, the password is not.
    let create_user = find("CREATE USER carol");
    assert!(get(create_user, "statement").contains("PASSWORD '***'"));
    assert_eq!(get(create_user, "status"), "ok");
    assert!(log.iter().all(|r| !format!("{r:?}").contains(SECRET)));
    // A query: its row and the bytes it sent.
    let count = find("SELECT count(*) FROM sales");
    assert_eq!(
        (
            get(count, "user_name"),
            get(count, "protocol"),
            get(count, "rows")
        ),
        ("admin", "pg", "1")
    );
    assert!(get(count, "bytes").parse::<u64>().unwrap() > 0);
    assert!(get(count, "duration_ms").parse::<f64>().unwrap() >= 0.0);
    // A write: rows affected.
    assert_eq!(get(find("INSERT INTO audit_t"), "rows"), "3");
    // A failure: status and SQLSTATE.
    let failed = find("no_such_table");
    assert_eq!(
        (get(failed, "status"), get(failed, "sqlstate")),
        ("error", "42P01")
    );
    // Extended protocol.
    assert_eq!(get(find("WHERE id > $1"), "rows"), "2");
    // ask: question, SQL, model, tries and outcome.
    let ask = find("ask('total revenue by region')");
    assert_eq!(get(ask, "ask_question"), "total revenue by region");
    assert!(get(ask, "ask_sql").starts_with("SELECT"), "{ask:?}");
    assert_eq!(
        (
            get(ask, "ask_model"),
            get(ask, "ask_tries"),
            get(ask, "ask_outcome")
        ),
        ("offline", "1", "ok")
    );
    // Flight SQL: one record for the statement, with its rows.
    let over_flight: Vec<_> = log
        .iter()
        .filter(|r| get(r, "statement") == "SELECT * FROM products")
        .collect();
    assert_eq!(over_flight.len(), 1, "{over_flight:?}");
    assert_eq!(
        (get(over_flight[0], "protocol"), get(over_flight[0], "rows")),
        ("flight", "8")
    );

    // Carol sees her own statements and session only; admin sees everyone's.
    let hers = rows(&carol, "SELECT user_name, statement FROM system.query_log").await;
    assert!(hers.iter().any(|r| get(r, "statement") == "SELECT 42"));
    assert!(
        hers.iter().all(|r| get(r, "user_name") == "carol"),
        "{hers:?}"
    );
    let her_sessions = rows(&carol, "SELECT * FROM system.sessions").await;
    assert_eq!(her_sessions.len(), 1, "{her_sessions:?}");
    assert_eq!(get(&her_sessions[0], "state"), "active"); // the query reading it
    let sessions = rows(&admin, "SELECT user_name, protocol FROM system.sessions").await;
    let seen: Vec<(&str, &str)> = sessions
        .iter()
        .map(|r| (get(r, "user_name"), get(r, "protocol")))
        .collect();
    for expected in [("admin", "pg"), ("carol", "pg"), ("admin", "flight")] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }

    // The same records are JSON lines under <data-dir>/audit.
    let audit_dir = server.data_dir.join("audit");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&audit_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains(SECRET),
            "the password reached the audit file"
        );
        for line in text.lines() {
            lines.push(serde_json::from_str::<serde_json::Value>(line).expect("a JSON line"));
        }
    }
    let ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["query_id"].as_str())
        .collect();
    for record in &log {
        assert!(
            ids.contains(&get(record, "query_id")),
            "{record:?} is in the audit file"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l["client"].as_str().unwrap_or("").starts_with("127.0.0.1:")));

    // A restart keeps the query log.
    drop((admin, carol, flight));
    server.stop();
    let server = TestServer::spawn_in(&server.data_dir.clone(), &[]);
    let admin = server.pg_client().await;
    let after = rows(&admin, "SELECT statement FROM system.query_log").await;
    assert!(after
        .iter()
        .any(|r| get(r, "statement").contains("CREATE USER carol")));
}

#[tokio::test]
async fn metrics_count_queries_and_ready_answers() {
    let server = TestServer::spawn();
    let (status, body) = http_get(server.http, "/ready").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ready"));

    let admin = server.pg_client().await;
    admin.simple_query("SELECT 1").await.unwrap();
    let (status, before) = http_get(server.http, "/metrics").await;
    assert_eq!(status, 200);
    let ok = "insightflow_queries_total{protocol=\"pg\",status=\"ok\"}";
    let errors = "insightflow_queries_total{protocol=\"pg\",status=\"error\"}";
    for name in [
        "insightflow_query_duration_seconds_bucket",
        "insightflow_rows_returned_total",
        "insightflow_bytes_returned_total",
        "insightflow_memory_pool_bytes",
        "insightflow_spill_bytes",
    ] {
        assert!(before.contains(name), "{name} missing from:\n{before}");
    }
    assert!(sample(&before, "insightflow_connections_active{protocol=\"pg\"}") >= 1.0);

    for _ in 0..3 {
        admin.simple_query("SELECT * FROM products").await.unwrap();
    }
    admin
        .simple_query("SELECT nope FROM products")
        .await
        .unwrap_err();
    let (_, after) = http_get(server.http, "/metrics").await;
    assert_eq!(sample(&after, ok) - sample(&before, ok), 3.0, "{after}");
    assert_eq!(sample(&after, errors) - sample(&before, errors), 1.0);
    let rows = "insightflow_rows_returned_total{protocol=\"pg\"}";
    assert!(sample(&after, rows) - sample(&before, rows) >= 24.0);
}

/// Each statement is logged inside its connection's span (the client address) with its
/// query id, user and protocol: the id is the one `system.query_log` holds, so a query
/// can be followed from the log to the query log and back.
#[tokio::test]
async fn statements_are_logged_in_connection_spans_with_query_id_and_user() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    client.simple_query("SELECT 42 AS traced").await.unwrap();
    let logged = rows(
        &client,
        "SELECT query_id FROM system.query_log WHERE statement = 'SELECT 42 AS traced'",
    )
    .await;
    let query_id = get(&logged[0], "query_id").to_string();
    let ansi = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let log_path = server.data_dir.with_extension("log");
    let mut line = None;
    for _ in 0..50 {
        let log = ansi
            .replace_all(&std::fs::read_to_string(&log_path).unwrap_or_default(), "")
            .to_string();
        line = log
            .lines()
            .find(|l| l.contains("statement finished") && l.contains(&query_id))
            .map(str::to_string);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let line = line.expect("a 'statement finished' log line with the query id");
    assert!(line.contains("pg_connection{client=127.0.0.1:"), "{line}");
    assert!(line.contains("user=\"admin\""), "{line}");
    assert!(line.contains("protocol=\"pg\""), "{line}");
    assert!(line.contains("status=\"ok\""), "{line}");
}
