//! `STORED AS POSTGRES` and `STORED AS MYSQL` against the real PostgreSQL
//! (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) of this machine: a Postgres table, a
//! MariaDB table and a local Parquet file joined in one query, push-down seen in
//! EXPLAIN, clear errors, and the tables still there after a restart.

use std::process::Command;

use tokio_postgres::NoTls;

use crate::common::{count, TestServer};

const PG_URL: &str = "postgres://postgres:not-shown-pw@127.0.0.1:5432/test";

/// Runs SQL in MariaDB's own client.
fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-N",
            "-B",
            "test",
            "-e",
            sql,
        ])
        .output()
        .expect("the mariadb client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn postgres() -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=test", NoTls)
            .await
            .expect("the PostgreSQL on this machine");
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn postgres_mariadb_and_parquet_join_in_one_query_with_push_down() {
    // Tables of our own in the shared databases, unique to this run.
    let tag = format!("if_{}", std::process::id());
    let (orders, customers) = (format!("{tag}_orders"), format!("{tag}_customers"));
    let pg = postgres().await;
    pg.batch_execute(&format!(
        "DROP TABLE IF EXISTS {orders};
         CREATE TABLE {orders} (id int PRIMARY KEY, customer_id int, amount float8, status text);
         INSERT INTO {orders}
           SELECT i, i % 50, (i % 97) * 1.5, CASE WHEN i % 3 = 0 THEN 'open' ELSE 'paid' END
           FROM generate_series(1, 1000) i;"
    ))
    .await
    .unwrap();
    mariadb(&format!(
        "DROP TABLE IF EXISTS {customers};
         CREATE TABLE {customers} (id INT PRIMARY KEY, name VARCHAR(40), region_id INT);
         INSERT INTO {customers}
           SELECT seq, CONCAT('customer ', seq), seq % 4 FROM seq_0_to_49;"
    ));

    let data = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn_in(data.path(), &[]);
    let admin = server.pg_client().await;
    admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE pg_orders STORED AS POSTGRES LOCATION '{PG_URL}'
               OPTIONS ('table' 'public.{orders}', 'sslmode' 'disable');
             CREATE EXTERNAL TABLE my_customers STORED AS MYSQL
               LOCATION 'mysql://root@127.0.0.1:3306/test'
               OPTIONS ('table' '{customers}', 'sslmode' 'disabled');
             COPY (SELECT * FROM (VALUES (0, 'North'), (1, 'South'), (2, 'East'), (3, 'West'))
                   AS r(region_id, region)) TO 'regions.parquet' STORED AS PARQUET;
             CREATE EXTERNAL TABLE regions STORED AS PARQUET LOCATION 'regions.parquet';"
        ))
        .await
        .expect("external tables over both databases");

    // The remote schemas arrive as Arrow types.
    let n: i64 = admin
        .query_one("SELECT count(*) FROM pg_orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);

    let joined = "SELECT r.region, round(sum(o.amount), 2) AS revenue
                  FROM pg_orders o
                  JOIN my_customers c ON o.customer_id = c.id
                  JOIN regions r ON c.region_id = r.region_id
                  WHERE o.status = 'paid'
                  GROUP BY r.region ORDER BY r.region";
    let ours: Vec<(String, f64)> = admin
        .query(joined, &[])
        .await
        .expect("the join")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The same answer computed by PostgreSQL alone (customer i has region i % 4).
    let expected: Vec<(String, f64)> = pg
        .query(
            &format!(
                "SELECT (ARRAY['North','South','East','West'])[(customer_id % 4) + 1] AS region,
                        round(sum(amount)::numeric, 2)::float8
                 FROM {orders} WHERE status = 'paid' GROUP BY 1 ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(ours, expected);

    // Filters, projections and limits go to the remote database.
    let plan = explain(
        &admin,
        "SELECT id FROM pg_orders WHERE status = 'open' LIMIT 3",
    )
    .await;
    assert!(
        plan.contains("WHERE") && plan.contains("LIMIT 3") && plan.contains("\"status\" = 'open'"),
        "{plan}"
    );
    assert!(
        !plan.contains("\"amount\""),
        "only the needed columns are fetched: {plan}"
    );
    let plan = explain(&admin, "SELECT name FROM my_customers WHERE region_id = 2").await;
    assert!(
        plan.contains("WHERE") && plan.contains("`region_id` = 2"),
        "{plan}"
    );

    // Clear errors: a refused connection and a missing table; the server goes on.
    let err = admin
        .batch_execute(
            "CREATE EXTERNAL TABLE nowhere STORED AS POSTGRES
               LOCATION 'postgres://postgres:not-shown-pw@127.0.0.1:1/test'
               OPTIONS ('sslmode' 'disable')",
        )
        .await
        .unwrap_err();
    let message = err.as_db_error().unwrap().message().to_string();
    assert_eq!(err.code().unwrap().code(), "08001", "{message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains("not-shown-pw"), "{message}");
    let err = admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE missing STORED AS MYSQL LOCATION 'mysql://root@127.0.0.1:3306/test'
               OPTIONS ('table' '{tag}_no_such_table', 'sslmode' 'disabled')"
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code().unwrap().code(),
        "42P01",
        "{:?}",
        err.as_db_error()
    );

    // The planted password shows on no surface a client can read.
    for sql in [
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM information_schema.columns",
        "SELECT * FROM information_schema.views",
        "SELECT * FROM information_schema.df_settings",
        "SHOW CREATE TABLE pg_orders",
        "SELECT * FROM pg_catalog.pg_class",
        "SELECT * FROM pg_catalog.pg_tables",
        "SELECT * FROM pg_catalog.pg_views",
        "SELECT * FROM pg_catalog.pg_settings",
        "SELECT * FROM system.sessions",
    ] {
        let text = match admin.simple_query(sql).await {
            Ok(messages) => messages
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("{e:?}"),
        };
        assert!(
            !text.contains("not-shown-pw"),
            "{sql} shows the password:\n{text}"
        );
    }

    // The connection string's password is not in the query log.
    let log: Vec<String> = admin
        .query("SELECT statement FROM system.query_log", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(log.iter().any(|s| s.contains("STORED AS POSTGRES")));
    assert!(log.iter().all(|s| !s.contains("not-shown-pw")), "{log:?}");

    // At rest the password is sealed (AES-GCM under <data-dir>/secret.key, mode 0600).
    let catalog = std::fs::read_to_string(data.path().join("catalog.json")).unwrap();
    assert!(
        !catalog.contains("not-shown-pw") && catalog.contains("sealed:v1:"),
        "{catalog}"
    );
    let key = std::fs::metadata(data.path().join("secret.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );

    // A restart opens the secret and reconnects.
    drop(admin);
    server.stop();
    let log = std::fs::read_to_string(data.path().with_extension("log")).unwrap();
    assert!(
        log.contains("statement finished"),
        "the log records statements"
    );
    assert!(
        !log.contains("not-shown-pw"),
        "the server log shows the password"
    );
    let server = TestServer::spawn_in(data.path(), &[]);
    let admin = server.pg_client().await;
    let n: i64 = admin
        .query_one("SELECT count(*) FROM my_customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 50);
    let n: i64 = admin
        .query_one("SELECT count(*) FROM pg_orders WHERE status = 'paid'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 667);

    pg.batch_execute(&format!("DROP TABLE {orders}"))
        .await
        .unwrap();
    mariadb(&format!("DROP TABLE {customers}"));
}

#[tokio::test]
async fn remote_queries_are_tables_with_push_down_on_both_databases() {
    let tag = format!("ifq_{}", std::process::id());
    let pg = postgres().await;
    pg.batch_execute(&format!(
        "DROP TABLE IF EXISTS {tag};
         CREATE TABLE {tag} (id int, region text, amount numeric(10,2));
         INSERT INTO {tag} SELECT i, (ARRAY['north','south'])[i % 2 + 1], i * 1.25
           FROM generate_series(1, 100) i;"
    ))
    .await
    .unwrap();
    mariadb(&format!(
        "DROP TABLE IF EXISTS {tag};
         CREATE TABLE {tag} (id INT, region VARCHAR(10), amount DECIMAL(10,2));
         INSERT INTO {tag} SELECT seq, IF(seq % 2 = 0, 'north', 'south'), seq * 1.25
           FROM seq_1_to_100;"
    ));

    let data = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn_in(data.path(), &[]);
    let admin = server.pg_client().await;
    // An aggregate the remote database computes; a trailing ';' as pasted from psql.
    admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE pg_totals STORED AS POSTGRES LOCATION '{PG_URL}'
               OPTIONS ('sslmode' 'disable', 'query'
                 'SELECT region, count(*)::int8 AS orders, sum(amount)::numeric(12,2) AS total
                  FROM {tag} GROUP BY region;');
             CREATE EXTERNAL TABLE my_big STORED AS MYSQL
               LOCATION 'mysql://root@127.0.0.1:3306/test'
               OPTIONS ('sslmode' 'disabled', 'query'
                 'SELECT id, region, amount FROM {tag} WHERE amount > 100');"
        ))
        .await
        .expect("tables over remote queries");

    let totals: Vec<(String, i64, String)> = admin
        .query(
            "SELECT region, orders, CAST(total AS VARCHAR) FROM pg_totals ORDER BY region",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // sum(i * 1.25) over even i in 1..=100 (region 'north') and odd i ('south').
    assert_eq!(
        totals,
        vec![
            ("north".to_string(), 50, "3187.50".to_string()),
            ("south".to_string(), 50, "3125.00".to_string())
        ]
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM my_big").await, 20);
    // Both remote queries joined in one local query.
    let joined: i64 = admin
        .query_one(
            "SELECT count(*) FROM my_big b JOIN pg_totals t ON b.region = t.region",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(joined, 20);

    // Filters, projections and limits are applied around the remote query, remotely.
    let plan = explain(
        &admin,
        "SELECT orders FROM pg_totals WHERE region = 'south' LIMIT 1",
    )
    .await;
    assert!(
        plan.contains("FROM (SELECT region, count(*)")
            && plan.contains("'south'")
            && plan.contains("LIMIT 1"),
        "{plan}"
    );
    let plan = explain(&admin, "SELECT id FROM my_big WHERE id < 90").await;
    assert!(
        plan.contains("`id` < 90") && plan.contains("FROM (SELECT id"),
        "{plan}"
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM my_big WHERE id < 90").await,
        9
    );

    // A query that selects nothing still has its columns.
    admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE pg_none STORED AS POSTGRES LOCATION '{PG_URL}'
               OPTIONS ('sslmode' 'disable', 'query' 'SELECT id, region FROM {tag} WHERE false')"
        ))
        .await
        .unwrap();
    let columns: Vec<String> = admin
        .query(
            "SELECT column_name FROM information_schema.columns
             WHERE table_name = 'pg_none' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["id", "region"]);
    assert_eq!(count(&admin, "SELECT count(*) FROM pg_none").await, 0);

    // Clear errors: a query naming a missing table, a broken query, both options at once.
    let code = |e: tokio_postgres::Error| e.code().unwrap().code().to_string();
    let err = admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE bad STORED AS POSTGRES LOCATION '{PG_URL}'
               OPTIONS ('sslmode' 'disable', 'query' 'SELECT * FROM {tag}_missing')"
        ))
        .await
        .unwrap_err();
    assert_eq!(code(err), "42P01");
    let err = admin
        .batch_execute(
            "CREATE EXTERNAL TABLE bad STORED AS MYSQL LOCATION 'mysql://root@127.0.0.1:3306/test'
               OPTIONS ('sslmode' 'disabled', 'query' 'SELEC nothing')",
        )
        .await
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("cannot read the query"),
        "{err:?}"
    );
    let err = admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE bad STORED AS POSTGRES LOCATION '{PG_URL}'
               OPTIONS ('table' '{tag}', 'query' 'SELECT 1')"
        ))
        .await
        .unwrap_err();
    assert!(
        err.as_db_error().unwrap().message().contains("not both"),
        "{err:?}"
    );

    // The probes left nothing behind in either database.
    let leftovers: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'insightflow_probe%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0);

    // After a restart the tables are built again from the catalog.
    drop(admin);
    server.stop();
    let server = TestServer::spawn_in(data.path(), &[]);
    let admin = server.pg_client().await;
    assert_eq!(count(&admin, "SELECT count(*) FROM pg_totals").await, 2);
    assert_eq!(count(&admin, "SELECT count(*) FROM my_big").await, 20);

    pg.batch_execute(&format!("DROP TABLE {tag}"))
        .await
        .unwrap();
    mariadb(&format!("DROP TABLE {tag}"));
}

async fn explain(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .simple_query(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}
