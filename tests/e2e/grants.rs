//! Users, roles and grants: a matrix of users × tables × statement kinds over pgwire
//! (simple and extended protocol) and Flight SQL. A user who was not granted a table
//! must not read a single value of it through any path.

use arrow::array::Array;
use arrow_flight::sql::CommandGetTables;
use futures::{SinkExt, TryStreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::common::{count, TestServer};

const SETUP: &str = "
    CREATE USER ann WITH PASSWORD 'ann-pw';
    CREATE USER bob WITH PASSWORD 'bob-pw';
    CREATE ROLE analysts;
    GRANT SELECT ON TABLE sales TO analysts;
    GRANT analysts TO ann;
    CREATE VIEW customer_names AS SELECT name FROM customers;
    GRANT SELECT ON customer_names TO ann;
    CREATE TABLE notes (id INT, body VARCHAR);
    GRANT INSERT ON TABLE notes TO ann;
    CREATE SCHEMA scratch;
    GRANT ALL ON SCHEMA scratch TO bob;
";

/// The SQLSTATE of a failed statement (panics if it succeeded).
async fn sqlstate(client: &Client, sql: &str) -> SqlState {
    match client.simple_query(sql).await {
        Ok(_) => panic!("expected {sql} to fail"),
        Err(e) => e
            .code()
            .cloned()
            .unwrap_or_else(|| panic!("{sql}: no SQLSTATE: {e}")),
    }
}

async fn denied(client: &Client, sql: &str) {
    let err = client.simple_query(sql).await.expect_err(sql);
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{sql}: {message}"
    );
}

#[tokio::test]
async fn grants_decide_what_each_user_reads_and_writes_over_pgwire() {
    let server = TestServer::spawn();
    let admin = server.pg_client().await;
    admin.batch_execute(SETUP).await.expect("setup as admin");

    let ann = server
        .pg_client_as("ann", "ann-pw")
        .await
        .expect("ann logs in");
    // Granted through the role.
    assert_eq!(count(&ann, "SELECT count(*) FROM sales").await, 2000);
    assert!(count(&ann, "SELECT count(*) FROM profile('sales')").await > 0);
    let answer = ann
        .simple_query("SELECT * FROM ask('total revenue by region')")
        .await
        .expect("ask over a granted table");
    assert!(answer.len() > 2, "ask returned rows");

    // Not granted: every path to customers is refused.
    for sql in [
        "SELECT * FROM customers",
        "SELECT count(*) FROM customers",
        "WITH c AS (SELECT * FROM customers) SELECT count(*) FROM c",
        "SELECT count(*) FROM sales WHERE customer_id IN (SELECT customer_id FROM customers)",
        "SELECT s.revenue, c.name FROM sales s JOIN customers c ON s.customer_id = c.customer_id",
        "SELECT (SELECT max(name) FROM customers) AS n",
        // Views run with the reader's rights: the view's grant alone opens nothing.
        "SELECT * FROM customer_names",
        "SELECT * FROM profile('customers')",
        "SELECT * FROM quality('(SELECT * FROM customers)')",
        "SELECT * FROM anomalies('(SELECT signup_date, customer_id FROM customers)', 'customer_id', 'signup_date')",
        "COPY (SELECT * FROM customers) TO STDOUT",
        // INSERT granted on notes, SELECT not.
        "SELECT * FROM notes",
        "INSERT INTO notes SELECT customer_id, name FROM customers",
    ] {
        denied(&ann, sql).await;
    }
    // The extended protocol (prepared statements with parameters) is checked too.
    let err = ann
        .query(
            "SELECT name FROM customers WHERE customer_id = $1",
            &[&1i32],
        )
        .await
        .expect_err("extended protocol");
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    // ask never shows a model (or the offline translator) a table the caller cannot
    // read, and never runs SQL over one.
    let asked = ann
        .simple_query("SELECT ask_sql('how many customers are in each segment')")
        .await;
    if let Ok(messages) = asked {
        let text = format!("{messages:?}");
        assert!(
            !text.contains("customers"),
            "ask_sql used customers: {text}"
        );
    }

    // Writes: INSERT on notes, through SQL and COPY.
    ann.simple_query("INSERT INTO notes VALUES (1, 'from ann')")
        .await
        .expect("insert granted");
    let sink = ann
        .copy_in::<_, bytes::Bytes>("COPY notes FROM STDIN WITH (FORMAT csv)")
        .await
        .expect("copy granted");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"2,copied\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);
    assert_eq!(count(&admin, "SELECT count(*) FROM notes").await, 2);

    // Only superusers manage users and reach files; schema owners create tables.
    for sql in [
        "CREATE USER eve WITH PASSWORD 'x'",
        "GRANT SELECT ON TABLE customers TO ann",
        "ALTER USER bob WITH PASSWORD 'taken'",
        "DROP USER bob",
        "CREATE EXTERNAL TABLE stolen STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE TABLE mine (x INT)",
        "DROP TABLE notes",
        "COPY (SELECT * FROM sales) TO 'out.csv' STORED AS CSV",
    ] {
        denied(&ann, sql).await;
    }
    let bob = server
        .pg_client_as("bob", "bob-pw")
        .await
        .expect("bob logs in");
    denied(&bob, "SELECT * FROM sales").await;
    bob.batch_execute("CREATE TABLE scratch.t AS SELECT 1 AS x; INSERT INTO scratch.t VALUES (2)")
        .await
        .expect("bob owns scratch");
    assert_eq!(count(&bob, "SELECT sum(x) FROM scratch.t").await, 3);
    denied(&ann, "SELECT * FROM scratch.t").await;
    denied(&bob, "CREATE TABLE scratch.copy AS SELECT * FROM sales").await;

    // A role without LOGIN cannot connect; the error is the bad-password one.
    let err = server
        .pg_client_as("analysts", "")
        .await
        .expect_err("no login");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");

    // Revoking the membership closes the table; a new password replaces the old one.
    admin
        .batch_execute("REVOKE analysts FROM ann; ALTER USER ann WITH PASSWORD 'ann-new'")
        .await
        .expect("revoke, alter");
    denied(&ann, "SELECT count(*) FROM sales").await;
    assert!(server.pg_client_as("ann", "ann-pw").await.is_err());
    let ann = server
        .pg_client_as("ann", "ann-new")
        .await
        .expect("new password");
    admin
        .batch_execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO ann; DROP USER bob")
        .await
        .expect("grant all tables, drop bob");
    assert_eq!(
        count(&ann, "SELECT count(*) FROM customers").await,
        count(&admin, "SELECT count(*) FROM customers").await
    );
    assert!(server.pg_client_as("bob", "bob-pw").await.is_err());
    assert_eq!(
        sqlstate(&admin, "GRANT SELECT ON TABLE no_such_table TO ann").await,
        SqlState::UNDEFINED_TABLE
    );
}

#[tokio::test]
async fn grants_persist_and_apply_to_flight_sql() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    {
        let server = TestServer::spawn_in(&dir, &["--demo"]);
        server
            .pg_client()
            .await
            .batch_execute(SETUP)
            .await
            .expect("setup");
    }
    let server = TestServer::spawn_in(&dir, &["--demo"]);
    let ann = server
        .pg_client_as("ann", "ann-pw")
        .await
        .expect("ann after restart");
    assert_eq!(count(&ann, "SELECT count(*) FROM sales").await, 2000);
    denied(&ann, "SELECT * FROM customers").await;

    let mut flight = server.flight_client_as("ann", "ann-pw").await;
    let err = flight
        .execute("SELECT * FROM customers".into(), None)
        .await
        .expect_err("customers over flight");
    let text = err.to_string();
    assert!(
        text.contains("PermissionDenied") || text.contains("permission denied"),
        "{err}"
    );
    let info = flight
        .execute("SELECT count(*) FROM sales".into(), None)
        .await
        .expect("sales over flight");
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<_> = flight
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let err = flight
        .execute_update(
            "INSERT INTO notes SELECT customer_id, name FROM customers".into(),
            None,
        )
        .await
        .expect_err("insert from customers");
    assert!(err.to_string().contains("permission denied"), "{err}");

    // The table list shows what ann may read, not the rest.
    let info = flight
        .get_tables(CommandGetTables {
            db_schema_filter_pattern: Some("public".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<_> = flight
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let col = b
                .column_by_name("table_name")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap()
                .clone();
            (0..col.len()).map(move |i| col.value(i).to_string())
        })
        .collect();
    assert!(names.contains(&"sales".to_string()), "{names:?}");
    assert!(names.contains(&"notes".to_string()), "{names:?}");
    assert!(!names.contains(&"customers".to_string()), "{names:?}");
}

/// Table names of a listing query, sorted.
async fn names(client: &Client, sql: &str) -> Vec<String> {
    let mut names: Vec<String> = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn catalog_listings_show_each_user_only_what_they_may_read() {
    let server = TestServer::spawn();
    let admin = server.pg_client().await;
    admin.batch_execute(SETUP).await.expect("setup as admin");
    let ann = server.pg_client_as("ann", "ann-pw").await.unwrap();

    let listings = [
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public' \
         UNION ALL SELECT viewname FROM pg_catalog.pg_views WHERE schemaname = 'public'",
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
         ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
    ];
    for sql in listings {
        assert_eq!(
            names(&ann, sql).await,
            ["customer_names", "notes", "sales"],
            "{sql}"
        );
        let everything = names(&admin, sql).await;
        for table in ["customers", "products", "sales", "customer_names", "notes"] {
            assert!(
                everything.iter().any(|t| t == table),
                "admin sees {table}: {sql}"
            );
        }
    }
    // Looking a hidden table up by name still says why it cannot be read.
    denied(&ann, "SELECT * FROM customers").await;
    // System tables are listed for everyone.
    let system = names(
        &ann,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'system'",
    )
    .await;
    assert_eq!(system, ["query_log", "sessions"]);
}

/// Sends `data` to `COPY table FROM STDIN` as one client; the rows loaded.
async fn copy_in(
    client: &Client,
    table: &str,
    data: Vec<u8>,
) -> Result<u64, tokio_postgres::Error> {
    let sink = client
        .copy_in::<_, bytes::Bytes>(&format!("COPY {table} FROM STDIN WITH (FORMAT csv)"))
        .await?;
    futures::pin_mut!(sink);
    for chunk in data.chunks(500) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

#[tokio::test]
async fn role_caps_bound_result_rows_and_loaded_bytes_over_both_protocols() {
    let server = TestServer::spawn();
    let admin = server.pg_client().await;
    admin
        .batch_execute(
            "CREATE USER dora WITH PASSWORD 'dora-pw';
             CREATE ROLE demo_tier;
             ALTER ROLE demo_tier SET max_result_rows = 100;
             ALTER ROLE demo_tier SET max_file_bytes TO 2000;
             GRANT demo_tier TO dora;
             GRANT SELECT ON TABLE sales TO dora;
             CREATE TABLE uploads (id INT, note VARCHAR);
             GRANT INSERT ON TABLE uploads TO dora;",
        )
        .await
        .expect("setup");
    let dora = server.pg_client_as("dora", "dora-pw").await.unwrap();

    // Up to the cap: fine. Past it: 54000, over the simple and the extended protocol.
    assert_eq!(
        dora.query("SELECT * FROM sales LIMIT 100", &[])
            .await
            .unwrap()
            .len(),
        100
    );
    for err in [
        dora.simple_query("SELECT * FROM sales")
            .await
            .map(|_| ())
            .unwrap_err(),
        dora.query("SELECT * FROM sales", &[])
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert_eq!(err.code().map(|c| c.code()), Some("54000"), "{err:?}");
        let message = err.as_db_error().unwrap().message().to_string();
        assert!(message.contains("max_result_rows = 100"), "{message}");
    }
    // Admin is a superuser: no caps.
    assert_eq!(
        count(&admin, "SELECT count(*) FROM (SELECT * FROM sales)").await,
        2000
    );
    assert_eq!(
        admin.query("SELECT * FROM sales", &[]).await.unwrap().len(),
        2000
    );

    // Loads: a small COPY passes, one past max_file_bytes fails and commits nothing.
    let small: Vec<u8> = (0..20)
        .flat_map(|i| format!("{i},small\n").into_bytes())
        .collect();
    assert_eq!(copy_in(&dora, "uploads", small).await.unwrap(), 20);
    let big: Vec<u8> = (0..500)
        .flat_map(|i| format!("{i},too big\n").into_bytes())
        .collect();
    let err = copy_in(&dora, "uploads", big).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("54000"), "{err:?}");
    assert_eq!(count(&admin, "SELECT count(*) FROM uploads").await, 20);

    // Flight SQL: the same cap on rows.
    let mut flight = server.flight_client_as("dora", "dora-pw").await;
    let rows = |batches: &[arrow::record_batch::RecordBatch]| -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    };
    let info = flight
        .execute("SELECT * FROM sales LIMIT 60".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<_> = flight
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows(&batches), 60);
    let info = flight
        .execute("SELECT * FROM sales".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let result: Result<Vec<_>, _> = flight.do_get(ticket).await.unwrap().try_collect().await;
    let err = result.expect_err("past the cap over Flight");
    assert!(err.to_string().contains("54000"), "{err}");

    // Flight bulk ingest past max_file_bytes fails and commits nothing.
    let ids = arrow::array::Int32Array::from_iter_values(0..2000);
    let notes = arrow::array::StringArray::from_iter_values((0..2000).map(|i| format!("row {i}")));
    let batch = arrow::record_batch::RecordBatch::try_from_iter([
        ("id", std::sync::Arc::new(ids) as arrow::array::ArrayRef),
        ("note", std::sync::Arc::new(notes) as arrow::array::ArrayRef),
    ])
    .unwrap();
    let command = arrow_flight::sql::CommandStatementIngest {
        table_definition_options: Some(arrow_flight::sql::TableDefinitionOptions {
            if_not_exist: arrow_flight::sql::TableNotExistOption::Fail.into(),
            if_exists: arrow_flight::sql::TableExistsOption::Append.into(),
        }),
        table: "uploads".into(),
        ..Default::default()
    };
    let err = flight
        .execute_ingest(command, futures::stream::iter([Ok(batch)]))
        .await
        .expect_err("past max_file_bytes over Flight");
    assert!(err.to_string().contains("54000"), "{err}");
    assert_eq!(count(&admin, "SELECT count(*) FROM uploads").await, 20);

    // RESET lifts the cap.
    admin
        .batch_execute("ALTER ROLE demo_tier RESET max_result_rows")
        .await
        .unwrap();
    assert_eq!(
        dora.query("SELECT * FROM sales", &[]).await.unwrap().len(),
        2000
    );
    // Unknown settings are refused with the names that exist.
    let err = admin
        .batch_execute("ALTER ROLE demo_tier SET max_cpu = 3")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err:?}");
}
