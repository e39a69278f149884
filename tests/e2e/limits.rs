//! Bounded by default: the memory pool (spill or SQLSTATE 53200), the server-wide
//! statement timeout (57014), the connection cap (53300) and the per-user rate limit
//! (53400), over pgwire and Flight SQL; after each the server keeps serving.

use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tokio_postgres::error::SqlState;
use tonic::transport::Channel;

use crate::common::{http_get, TestServer, ADMIN_PASSWORD};

const ENDLESS: &str = "SELECT sum(value) FROM generate_series(1, 20000000000)";

async fn flight(server: &TestServer) -> FlightSqlServiceClient<Channel> {
    server.flight_client_as("admin", ADMIN_PASSWORD).await
}

/// Runs `sql` over Flight to the end; the status if it failed.
async fn flight_error(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> tonic::Status {
    let run = async {
        let info = client.execute(sql.to_string(), None).await?;
        let ticket = info.endpoint[0].ticket.clone().expect("ticket");
        let _: Vec<_> = client.do_get(ticket).await?.try_collect().await?;
        Ok::<_, arrow_flight::error::FlightError>(())
    };
    match run.await {
        Ok(()) => panic!("{sql} should fail over Flight"),
        Err(arrow_flight::error::FlightError::Tonic(status)) => *status,
        Err(other) => panic!("{sql}: not a gRPC status: {other}"),
    }
}

async fn serves(client: &tokio_postgres::Client) {
    let n: i64 = client
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .expect("the server still serves")
        .get(0);
    assert_eq!(n, 2000);
}

#[tokio::test]
async fn memory_timeout_and_connection_limits_hold_over_both_protocols() {
    let server = TestServer::spawn_with(&[
        "--memory-limit",
        "32MiB",
        "--statement-timeout-secs",
        "1",
        "--max-connections",
        "3",
    ]);
    let admin = server.pg_client().await;
    // A session's own setting replaces the server's timeout (0: none).
    admin
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();

    // A GROUP BY over 3M groups needs far more than 32 MiB: it spills and answers.
    let groups: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT value % 3000000 AS k, count(*) AS n \
             FROM generate_series(1, 6000000) GROUP BY 1)",
            &[],
        )
        .await
        .expect("the aggregate spills instead of failing")
        .get(0);
    assert_eq!(groups, 3_000_000);
    // array_agg cannot spill: a clean 53200 naming the consumers, not an OOM kill.
    let huge = "SELECT cardinality(array_agg(value)) FROM generate_series(1, 20000000)";
    let err = admin.simple_query(huge).await.expect_err("over the pool");
    assert_eq!(err.code(), Some(&SqlState::OUT_OF_MEMORY), "{err:?}");
    serves(&admin).await;
    let mut flight = flight(&server).await;
    let status = flight_error(&mut flight, huge).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");

    // The server-wide statement timeout, for sessions that did not set their own.
    let timed = server.pg_client().await;
    let started = Instant::now();
    let err = timed.simple_query(ENDLESS).await.expect_err("times out");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let status = flight_error(&mut flight, ENDLESS).await;
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status}");
    assert!(status.message().contains("57014"), "{status}");
    serves(&admin).await;

    // The connection cap: admin, timed and one more, then FATAL 53300.
    let second = timed;
    let third = server.pg_client().await;
    let refused = server
        .pg_client_as("admin", ADMIN_PASSWORD)
        .await
        .expect_err("a fourth connection is over the cap");
    assert_eq!(
        refused.code(),
        Some(&SqlState::TOO_MANY_CONNECTIONS),
        "{refused:?}"
    );
    let message = refused.as_db_error().unwrap().message();
    assert!(message.contains("too many clients"), "{message}");
    // A place frees up when a connection closes.
    drop(third);
    let mut fourth = None;
    for _ in 0..50 {
        if let Ok(client) = server.pg_client_as("admin", ADMIN_PASSWORD).await {
            fourth = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serves(&fourth.expect("a connection after one closed")).await;
    serves(&second).await;

    // Each refusal was recorded and counted.
    let log = admin
        .simple_query("SELECT sqlstate FROM system.query_log WHERE status <> 'ok'")
        .await
        .unwrap();
    let states: Vec<String> = log
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    for code in ["53200", "57014"] {
        assert!(states.iter().any(|s| s == code), "{code} in {states:?}");
    }
    let (_, metrics) = http_get(server.http, "/metrics").await;
    // At least the one above; retries while the closed place was freed may add more.
    let refused: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("insightflow_connections_refused_total ")?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "{metrics}");
    assert!(metrics.contains("insightflow_queries_total{protocol=\"pg\",status=\"canceled\"} 1"));
}

#[tokio::test]
async fn the_rate_limit_refuses_with_the_wait_time_then_lets_the_user_go_on() {
    let server = TestServer::spawn_with(&["--rate-limit", "5"]);
    let admin = server.pg_client().await;
    let mut refused = None;
    for _ in 0..30 {
        if let Err(e) = admin.simple_query("SELECT 1").await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("30 statements at once exceed 5 per second");
    assert_eq!(err.code().map(|c| c.code()), Some("53400"), "{err:?}");
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(
        message.contains("try again in") && message.contains("admin"),
        "{message}"
    );

    // Flight shares the user's bucket.
    let mut flight = flight(&server).await;
    let mut status = None;
    for _ in 0..30 {
        if let Err(e) = flight.execute("SELECT 1".to_string(), None).await {
            status = Some(e);
            break;
        }
    }
    match status.expect("Flight statements are limited too") {
        arrow_flight::error::FlightError::Tonic(s) => {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s}");
            assert!(s.message().contains("53400"), "{s}");
        }
        other => panic!("not a gRPC status: {other}"),
    }

    // After a second the bucket has refilled.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    admin.simple_query("SELECT 1").await.expect("allowed again");
    let (_, metrics) = http_get(server.http, "/metrics").await;
    let rejected = |protocol: &str| {
        let name = format!("insightflow_rate_limited_total{{protocol=\"{protocol}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&name)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        rejected("pg") >= 1.0 && rejected("flight") >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_flight_client_that_stops_reading_cancels_its_query() {
    let server = TestServer::spawn();
    let admin = server.pg_client().await;
    let mut client = flight(&server).await;
    let info = client.execute(ENDLESS.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let stream = client.do_get(ticket).await.unwrap();
    // Minutes of work if nothing stops it; the client gives up after half a second.
    let read = tokio::time::timeout(Duration::from_millis(500), async move {
        let mut stream = stream;
        stream.try_next().await
    })
    .await;
    assert!(read.is_err(), "the endless query answered: {read:?}");
    let started = Instant::now();
    loop {
        let rows = admin
            .query(
                "SELECT status, sqlstate FROM system.query_log WHERE protocol = 'flight' AND statement = $1",
                &[&ENDLESS],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            let (status, code): (String, String) = (row.get(0), row.get(1));
            assert_eq!((status.as_str(), code.as_str()), ("canceled", "57014"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the query was not stopped when its client went away"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serves(&admin).await;
}
