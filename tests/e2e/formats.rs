//! Every file format of `CREATE EXTERNAL TABLE`, with inferred schemas, through pgwire,
//! and still there after a restart.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::common::TestServer;

fn write_avro(path: &std::path::Path) {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = arrow_avro::writer::AvroWriter::new(file, schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("{table}: {e:?}"))
        .get(0)
}

#[tokio::test]
async fn csv_ndjson_json_parquet_arrow_and_avro_tables_with_inferred_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn_in(dir.path(), &["--demo"]);
    let files = dir.path().join("files");
    std::fs::write(
        files.join("t.ndjson"),
        "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n",
    )
    .unwrap();
    write_avro(&files.join("t.avro"));
    let client = server.pg_client().await;
    client
        .batch_execute(
            "COPY (SELECT * FROM products) TO 'p.parquet' STORED AS PARQUET;
             COPY (SELECT * FROM products) TO 'p.arrow' STORED AS ARROW;
             CREATE EXTERNAL TABLE t_csv STORED AS CSV LOCATION 'demo/customers.csv' OPTIONS ('format.has_header' 'true');
             CREATE EXTERNAL TABLE t_ndjson STORED AS NDJSON LOCATION 't.ndjson';
             CREATE EXTERNAL TABLE t_json STORED AS JSON LOCATION 't.ndjson';
             CREATE EXTERNAL TABLE t_parquet STORED AS PARQUET LOCATION 'p.parquet';
             CREATE EXTERNAL TABLE t_arrow STORED AS ARROW LOCATION 'p.arrow';
             CREATE EXTERNAL TABLE t_avro STORED AS AVRO LOCATION 't.avro';",
        )
        .await
        .unwrap();
    let expected = [
        ("t_csv", 40),
        ("t_ndjson", 2),
        ("t_json", 2),
        ("t_parquet", 8),
        ("t_arrow", 8),
        ("t_avro", 3),
    ];
    for (table, n) in expected {
        assert_eq!(count(&client, table).await, n, "{table}");
    }
    let name: String = client
        .query_one("SELECT name FROM t_avro WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "b");
    server.stop();
    let server = TestServer::spawn_in(dir.path(), &[]);
    let client = server.pg_client().await;
    for (table, n) in expected {
        assert_eq!(count(&client, table).await, n, "{table} after restart");
    }
}

#[tokio::test]
async fn corrupt_files_give_errors_and_the_server_keeps_serving() {
    let server = TestServer::spawn();
    let files = server.data_dir.join("files");
    std::fs::write(files.join("bad.parquet"), b"PAR1 this is not parquet").unwrap();
    std::fs::write(files.join("bad.avro"), b"Obj\x01 broken").unwrap();
    std::fs::write(files.join("bad.ndjson"), b"{\"a\": 1}\n{not json\n").unwrap();
    let client = server.pg_client().await;
    for sql in [
        "CREATE EXTERNAL TABLE bad_p STORED AS PARQUET LOCATION 'bad.parquet'",
        "CREATE EXTERNAL TABLE bad_a STORED AS AVRO LOCATION 'bad.avro'",
        "CREATE EXTERNAL TABLE missing STORED AS CSV LOCATION 'missing.csv'",
    ] {
        let err = client.simple_query(sql).await.expect_err(sql);
        assert!(err.code().is_some(), "{sql}: {err:?}");
    }
    // Schema inference may accept the first line; reading the rest must fail cleanly.
    if client
        .simple_query(
            "CREATE EXTERNAL TABLE bad_j (a BIGINT) STORED AS NDJSON LOCATION 'bad.ndjson'",
        )
        .await
        .is_ok()
    {
        let err = client
            .simple_query("SELECT * FROM bad_j")
            .await
            .unwrap_err();
        assert!(err.code().is_some(), "{err:?}");
    }
    assert_eq!(count(&client, "sales").await, 2000);
}
