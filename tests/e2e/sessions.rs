//! Session settings belong to their connection: `SET search_path` decides where
//! unqualified names resolve (and the grants check follows it), `SET datafusion.*`
//! changes one session, `RESET ALL` undoes a session's SETs.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::common::{count, TestServer};

async fn text(client: &Client, sql: &str) -> String {
    let rows = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows[0].get::<_, String>(0)
}

#[tokio::test]
async fn settings_and_search_path_are_per_session_and_grants_follow_resolution() {
    let server = TestServer::spawn();
    let admin = server.pg_client().await;
    admin
        .batch_execute(
            "CREATE SCHEMA lab;
             CREATE TABLE lab.events AS SELECT * FROM (VALUES (1), (2), (3)) AS v(x);
             CREATE TABLE events AS SELECT * FROM (VALUES (10)) AS v(x);
             CREATE USER ann WITH PASSWORD 'ann-pw';
             GRANT SELECT ON TABLE events TO ann;",
        )
        .await
        .expect("setup");

    let a = server.pg_client().await;
    let b = server.pg_client().await;
    a.batch_execute("SET search_path TO lab, public")
        .await
        .unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM events").await, 3);
    assert_eq!(text(&a, "SELECT current_schema()").await, "lab");
    assert_eq!(text(&a, "SHOW search_path").await, "lab, public");
    // Other sessions still resolve in public.
    assert_eq!(count(&b, "SELECT count(*) FROM events").await, 1);
    assert_eq!(text(&b, "SELECT current_schema()").await, "public");

    // DataFusion settings too.
    a.batch_execute("SET datafusion.execution.batch_size = 1234")
        .await
        .unwrap();
    let batch_size = "SELECT current_setting('datafusion.execution.batch_size')";
    assert_eq!(text(&a, batch_size).await, "1234");
    assert_eq!(text(&b, batch_size).await, "8192");

    // RESET ALL undoes them.
    a.simple_query("RESET ALL").await.unwrap();
    assert_eq!(text(&a, batch_size).await, "8192");
    assert_eq!(count(&a, "SELECT count(*) FROM events").await, 1);

    // A schema nobody created leaves names in public, as before.
    a.batch_execute("SET search_path = nowhere").await.unwrap();
    assert_eq!(text(&a, "SELECT current_schema()").await, "public");

    // ann may read public.events only: moving the default schema, by search_path or by
    // DataFusion's own setting, must not turn `events` into a table she cannot read.
    let ann = server.pg_client_as("ann", "ann-pw").await.expect("ann");
    assert_eq!(count(&ann, "SELECT count(*) FROM events").await, 1);
    for set in [
        "SET search_path = lab",
        "SET datafusion.catalog.default_schema = 'lab'",
    ] {
        ann.batch_execute(set).await.unwrap();
        let err = ann
            .query("SELECT * FROM events", &[])
            .await
            .expect_err("lab.events is not granted");
        assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{set}");
        let message = err.as_db_error().unwrap().message().to_string();
        assert!(message.contains("lab.events"), "{message}");
        ann.simple_query("RESET ALL").await.unwrap();
    }
    assert_eq!(count(&ann, "SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn temporary_tables_belong_to_their_connection() {
    let server = TestServer::spawn();
    let admin = server.pg_client().await;
    admin
        .batch_execute(
            "CREATE TABLE events AS SELECT * FROM (VALUES (1), (2)) AS v(x);
             CREATE USER ann WITH PASSWORD 'ann-pw';
             GRANT SELECT ON TABLE events TO ann;",
        )
        .await
        .expect("setup");

    let a = server.pg_client().await;
    let b = server.pg_client().await;
    // Tableau's capability probe, then rows in and out over both protocols.
    a.simple_query(
        r##"CREATE LOCAL TEMPORARY TABLE "#Tableau_1_Connect" ("COL" INTEGER) ON COMMIT PRESERVE ROWS"##,
    )
    .await
    .expect("create temporary table");
    a.simple_query(r##"INSERT INTO "#Tableau_1_Connect" VALUES (1), (2), (3)"##)
        .await
        .expect("insert");
    let probe = r##"SELECT count(*) FROM "#Tableau_1_Connect""##;
    assert_eq!(count(&a, probe).await, 3);
    let err = b
        .query(probe, &[])
        .await
        .expect_err("other sessions do not see it");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));

    // A temporary table hides a shared one of the same name, in its session only;
    // dropping it drops the temporary one.
    a.query("CREATE TEMP TABLE events AS SELECT 42 AS x", &[])
        .await
        .expect("temporary table as select (extended protocol)");
    assert_eq!(count(&a, "SELECT sum(x) FROM events").await, 42);
    assert_eq!(count(&a, "SELECT sum(x) FROM pg_temp.events").await, 42);
    assert_eq!(count(&b, "SELECT sum(x) FROM events").await, 3);
    a.execute("DROP TABLE events", &[])
        .await
        .expect("drop temporary");
    assert_eq!(count(&a, "SELECT sum(x) FROM events").await, 3);
    assert_eq!(count(&admin, "SELECT count(*) FROM events").await, 2);

    // Gone with the connection; nothing of it in the persistent catalog.
    drop(a);
    let again = server.pg_client().await;
    let err = again.query(probe, &[]).await.expect_err("gone");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    let listed = count(
        &admin,
        "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '#Tableau%'",
    )
    .await;
    assert_eq!(listed, 0);

    // Any user may make one, but only from what they may read.
    let ann = server.pg_client_as("ann", "ann-pw").await.expect("ann");
    ann.simple_query("CREATE TEMP TABLE mine AS SELECT x FROM events")
        .await
        .expect("ann's temporary table");
    assert_eq!(count(&ann, "SELECT count(*) FROM mine").await, 2);
    let err = ann
        .simple_query("CREATE TEMP TABLE stolen AS SELECT * FROM customers")
        .await
        .expect_err("customers is not granted");
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
}
