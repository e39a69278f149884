//! Analytic functions through pgwire on planted data: exact findings, and every
//! suggested fix runs as-is and removes its finding.

use crate::common::TestServer;

const PLANTED: &str = "id,region,quantity,amount,note\n\
1,North,3,10,a\n2,north ,2,20,\n3,NORTH,5,30,\n4,South,-2,40,\n5,South,1,50,\n\
6,South,4,60,\n6,South,4,60,\n7,East,2,70,b\n";

#[tokio::test]
async fn every_suggested_sql_runs_and_fixes_its_finding() {
    let server = TestServer::spawn();
    std::fs::write(server.data_dir.join("files/planted.csv"), PLANTED).unwrap();
    let client = server.pg_client().await;
    client
        .batch_execute(
            "CREATE EXTERNAL TABLE planted (id BIGINT, region VARCHAR, quantity BIGINT, amount VARCHAR, note VARCHAR) \
             STORED AS CSV LOCATION 'planted.csv' OPTIONS ('format.has_header' 'true')",
        )
        .await
        .unwrap();
    let findings = client
        .query(
            "SELECT check_name, column_name, affected_rows, suggested_sql FROM quality('planted')",
            &[],
        )
        .await
        .unwrap();
    let found: Vec<(String, Option<String>, i64)> = findings
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expect = |check: &str, column: Option<&str>, n: i64| {
        assert!(
            found
                .iter()
                .any(|(c, col, a)| c == check && col.as_deref() == column && *a == n),
            "expected {check} {column:?} {n} in {found:?}"
        );
    };
    expect("duplicate_rows", None, 1);
    expect("inconsistent_spelling", Some("region"), 2);
    expect("negative_values", Some("quantity"), 1);
    expect("numbers_stored_as_text", Some("amount"), 8);
    expect("null_share", Some("note"), 6);

    for row in &findings {
        let sql: String = row.get(3);
        client
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("suggested SQL fails: {sql}: {e:?}"));
    }
    for (view, check) in [
        ("planted_deduplicated", "duplicate_rows"),
        ("planted_normalized", "inconsistent_spelling"),
        ("planted_clamped", "negative_values"),
        ("planted_typed", "numbers_stored_as_text"),
    ] {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM quality('{view}') WHERE check_name = '{check}'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{view} still has {check}");
    }
    let typed: i64 = client
        .query_one("SELECT sum(amount) FROM planted_typed", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(typed, 340);
}

#[tokio::test]
async fn every_evidence_sql_of_insights_runs() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    // The planted shop of tests/slt/insights.slt: every kind of finding is there.
    client.batch_execute(SHOP).await.unwrap();
    let rows = client
        .query("SELECT kind, evidence_sql FROM insights('shop')", &[])
        .await
        .unwrap();
    assert!(rows.len() >= 5, "{} findings", rows.len());
    for row in rows {
        let (kind, sql): (String, String) = (row.get(0), row.get(1));
        client
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{kind}: evidence does not run: {sql}: {e:?}"));
    }
}

const SHOP: &str = "CREATE VIEW shop AS
SELECT CAST(to_timestamp_seconds(1704067200 + d.value * 86400) AS DATE) AS day,
       r.region,
       ((d.value / 7) * 4 + r.k) % 50 + 1 AS customer_id,
       (100 + d.value * 1.0)
         * CASE WHEN d.value % 7 IN (5, 6) THEN 1.6 ELSE 1.0 END
         * CASE r.region WHEN 'North' THEN 3.0 ELSE 1.0 END
         * CASE WHEN ((d.value / 7) * 4 + r.k) % 50 < 10 THEN 4.0 ELSE 1.0 END
         + ((d.value * 37 + r.k * 11) % 13)
         + CASE WHEN d.value IN (60, 120) THEN 5000 ELSE 0 END AS revenue
FROM generate_series(0, 179) AS d
CROSS JOIN (VALUES ('North', 1), ('South', 2), ('East', 3), ('West', 4)) AS r(region, k)";
