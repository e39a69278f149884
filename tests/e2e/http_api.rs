//! `STORED AS HTTP` against a small JSON API started by the test: page, offset and
//! cursor pagination, a JSON path, a header that carries a token, inferred types,
//! fresh data on every query, clear errors, and the token never shown back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::common::TestServer;

const TOKEN: &str = "Bearer t0ken-not-shown";

#[derive(Default)]
struct Api {
    requests: AtomicUsize,
}

type Params = Query<HashMap<String, String>>;

fn number(params: &HashMap<String, String>, key: &str, default: usize) -> usize {
    params
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 25 tickets, `page`/`per_page`, behind a token, records at `data.items`.
async fn tickets(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(p): Params,
) -> (StatusCode, Json<Value>) {
    api.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad token"})),
        );
    }
    let (page, size) = (number(&p, "page", 1), number(&p, "per_page", 10));
    let items: Vec<Value> = (1..=25)
        .skip((page - 1) * size)
        .take(size)
        .map(|i| json!({"id": i, "title": format!("ticket {i}"), "priority": i % 3, "open": i % 2 == 0}))
        .collect();
    (
        StatusCode::OK,
        Json(json!({"data": {"items": items}, "page": page})),
    )
}

/// 23 rows by `offset`/`limit`, the records are the whole answer.
async fn rows(Query(p): Params) -> Json<Value> {
    let (offset, limit) = (number(&p, "offset", 0), number(&p, "limit", 5));
    Json(Value::Array(
        (offset..23.min(offset + limit))
            .map(|i| json!({"n": i}))
            .collect(),
    ))
}

/// 7 events over 3 pages chained by a cursor.
async fn events(Query(p): Params) -> Json<Value> {
    let (events, next) = match p.get("cursor").map(String::as_str) {
        None => (vec![1, 2, 3], json!("c2")),
        Some("c2") => (vec![4, 5, 6], json!("c3")),
        Some("c3") => (vec![7], Value::Null),
        Some(other) => panic!("unknown cursor {other}"),
    };
    Json(
        json!({"events": events.iter().map(|e| json!({"event": e})).collect::<Vec<_>>(), "meta": {"next": next}}),
    )
}

async fn start_api() -> (String, Arc<Api>) {
    let api = Arc::new(Api::default());
    let app = Router::new()
        .route("/tickets", get(tickets))
        .route("/rows", get(rows))
        .route("/events", get(events))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, api)
}

async fn one_row(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test]
async fn json_apis_become_tables_with_every_kind_of_pagination() {
    let (base, api) = start_api().await;
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_in(data.path(), &[]);
    let admin = server.pg_client().await;
    admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE tickets STORED AS HTTP LOCATION '{base}/tickets'
               OPTIONS ('json_path' 'data.items', 'pagination' 'page', 'page_size' '10',
                        'header.authorization' '{TOKEN}');
             CREATE EXTERNAL TABLE numbers STORED AS HTTP LOCATION '{base}/rows'
               OPTIONS ('pagination' 'offset', 'page_size' '5');
             CREATE EXTERNAL TABLE events STORED AS HTTP LOCATION '{base}/events'
               OPTIONS ('json_path' 'events', 'pagination' 'cursor', 'cursor_path' 'meta.next');"
        ))
        .await
        .expect("HTTP tables");

    // Page pagination behind a token: 25 records over 3 pages, typed.
    assert_eq!(
        one_row(
            &admin,
            "SELECT count(*), sum(priority), count(*) FILTER (WHERE open) FROM tickets"
        )
        .await,
        ["25", "25", "12"]
    );
    let types = one_row(
        &admin,
        "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) \
         FROM information_schema.columns WHERE table_name = 'tickets'",
    )
    .await;
    assert_eq!(types, ["id:bigint,open:boolean,priority:bigint,title:text"]);
    // Offset and cursor pagination.
    assert_eq!(
        one_row(&admin, "SELECT count(*), max(n) FROM numbers").await,
        ["23", "22"]
    );
    assert_eq!(
        one_row(&admin, "SELECT count(*), sum(event) FROM events").await,
        ["7", "28"]
    );
    // Joined with other tables like any table.
    assert_eq!(
        one_row(
            &admin,
            "SELECT count(*) FROM tickets t JOIN numbers n ON t.id = n.n JOIN events e ON e.event = t.id",
        )
        .await,
        ["7"]
    );
    // Every query asks the API again (fresh data).
    let before = api.requests.load(Ordering::SeqCst);
    one_row(&admin, "SELECT count(*) FROM tickets").await;
    assert_eq!(api.requests.load(Ordering::SeqCst) - before, 3);

    // Clear errors.
    let err = admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE locked STORED AS HTTP LOCATION '{base}/tickets' OPTIONS ('json_path' 'data.items')"
        ))
        .await
        .unwrap_err();
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(message.contains("401"), "{message}");
    let err = admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE wrong STORED AS HTTP LOCATION '{base}/events' OPTIONS ('json_path' 'nope')"
        ))
        .await
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("json_path 'nope'"),
        "{err:?}"
    );

    // The token is sealed at rest and redacted in the query log.
    let catalog = std::fs::read_to_string(data.path().join("catalog.json")).unwrap();
    assert!(!catalog.contains("t0ken-not-shown"), "{catalog}");
    let log = admin
        .simple_query("SELECT statement FROM system.query_log")
        .await
        .unwrap();
    assert!(!format!("{log:?}").contains("t0ken-not-shown"));
}
