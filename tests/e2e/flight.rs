//! Arrow Flight SQL through the Rust client: handshake, queries, prepared statements
//! with parameters, metadata, updates and auth failures.

use arrow::array::{Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::CommandGetDbSchemas;
use arrow_flight::sql::CommandGetTables;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::common::{TestServer, ADMIN_PASSWORD};

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.flight))
        .unwrap()
        .connect()
        .await
        .expect("connect to flight")
}

async fn client(server: &TestServer) -> FlightSqlServiceClient<Channel> {
    let mut client = FlightSqlServiceClient::new(channel(server).await);
    client
        .handshake("admin", ADMIN_PASSWORD)
        .await
        .expect("handshake");
    client
}

async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: arrow_flight::FlightInfo,
) -> Vec<RecordBatch> {
    assert_eq!(info.endpoint.len(), 1, "exactly one endpoint");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    client
        .do_get(ticket)
        .await
        .expect("do_get")
        .try_collect()
        .await
        .expect("batches")
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn query_streams_arrow_batches() {
    let server = TestServer::spawn();
    let mut client = client(&server).await;
    let info = client
        .execute(
            "SELECT region, count(*) AS n FROM sales GROUP BY region ORDER BY region".into(),
            None,
        )
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 4);
    let regions = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let counts = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(regions.value(0), "East");
    assert_eq!(counts.iter().flatten().sum::<i64>(), 2000);
}

#[tokio::test]
async fn prepared_statements_with_and_without_parameters() {
    let server = TestServer::spawn();
    let mut client = client(&server).await;
    let mut stmt = client
        .prepare("SELECT count(*) AS n FROM sales".into(), None)
        .await
        .unwrap();
    let batches = fetch(&mut client, stmt.execute().await.unwrap()).await;
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 2000);
    stmt.close().await.unwrap();

    // ADBC and JDBC send `?`; DataFusion's `$1` works too.
    for sql in [
        "SELECT count(*) AS n FROM sales WHERE region = ? AND quantity >= ?",
        "SELECT count(*) AS n FROM sales WHERE region = $1 AND quantity >= $2",
    ] {
        let mut stmt = client.prepare(sql.into(), None).await.unwrap();
        let params = stmt.parameter_schema().unwrap().clone();
        assert_eq!(params.fields().len(), 2, "{sql}");
        let batch = RecordBatch::try_from_iter(vec![
            (
                "$1",
                std::sync::Arc::new(StringArray::from(vec!["North"])) as std::sync::Arc<dyn Array>,
            ),
            (
                "$2",
                std::sync::Arc::new(arrow::array::Int32Array::from(vec![5])) as _,
            ),
        ])
        .unwrap();
        stmt.set_parameters(batch).unwrap();
        let batches = fetch(&mut client, stmt.execute().await.unwrap()).await;
        let n = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert!(n > 0 && n < 2000, "{sql}: {n}");
        stmt.close().await.unwrap();
    }
}

#[tokio::test]
async fn metadata_catalogs_schemas_tables_types_and_sql_info() {
    let server = TestServer::spawn();
    let mut client = client(&server).await;
    let info = client.get_catalogs().await.unwrap();
    let batches = fetch(&mut client, info).await;
    let names = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(0), "insightflow");

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    let schemas = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(schemas.iter().flatten().any(|s| s == "public"));
    assert!(!schemas.iter().flatten().any(|s| s == "pg_catalog"));

    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("sa%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(rows(&batches), 1);
    let names = batches[0]
        .column(2)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(0), "sales");
    let schema_bytes = batches[0]
        .column(4)
        .as_any()
        .downcast_ref::<arrow::array::BinaryArray>()
        .unwrap();
    let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(schema_bytes.value(0)).unwrap();
    assert!(schema.field_with_name("revenue").is_ok());

    let info = client.get_table_types().await.unwrap();
    let batches = fetch(&mut client, info).await;
    let types = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(types.iter().flatten().any(|t| t == "VIEW"));

    let info = client.get_sql_info(vec![]).await.unwrap();
    let batches = fetch(&mut client, info).await;
    assert!(rows(&batches) > 3);
}

#[tokio::test]
async fn updates_create_tables_and_errors_map_to_grpc_codes() {
    let server = TestServer::spawn();
    let mut client = client(&server).await;
    let n = client
        .execute_update(
            "CREATE VIEW east AS SELECT * FROM sales WHERE region = 'East'".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    let info = client
        .execute("SELECT count(*) FROM east".into(), None)
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        512
    );

    let err = client
        .execute("SELECT * FROM nope".into(), None)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NotFound"), "{err:?}");
    let err = client.execute("SELEC 1".into(), None).await.unwrap_err();
    assert!(format!("{err:?}").contains("InvalidArgument"), "{err:?}");
}

#[tokio::test]
async fn wrong_password_and_missing_token_are_unauthenticated() {
    let server = TestServer::spawn();
    let mut client = FlightSqlServiceClient::new(channel(&server).await);
    let err = client.handshake("admin", "wrong").await.unwrap_err();
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err:?}"
    );
    let mut anonymous = FlightSqlServiceClient::new(channel(&server).await);
    let err = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("Unauthenticated"), "{err:?}");
    anonymous.set_token("made-up".into());
    let err = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("Unauthenticated"), "{err:?}");
}

/// What JDBC and Tableau ask beyond tables: keys (none: InsightFlow tables have no
/// keys), the type list, and SQL info by id; a prepared SELECT announces its schema.
#[tokio::test]
async fn metadata_for_jdbc_keys_types_and_sql_info_by_id() {
    use arrow_flight::sql::{
        CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
        CommandGetXdbcTypeInfo, SqlInfo,
    };
    let server = TestServer::spawn();
    let mut client = client(&server).await;

    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: Some("public".into()),
            table: "sales".into(),
        })
        .await
        .unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert!(schema.field_with_name("key_sequence").is_ok());
    assert_eq!(rows(&fetch(&mut client, info).await), 0);
    for info in [
        client
            .get_exported_keys(CommandGetExportedKeys {
                catalog: None,
                db_schema: None,
                table: "sales".into(),
            })
            .await
            .unwrap(),
        client
            .get_imported_keys(CommandGetImportedKeys {
                catalog: None,
                db_schema: None,
                table: "sales".into(),
            })
            .await
            .unwrap(),
    ] {
        let schema = info.clone().try_decode_schema().unwrap();
        assert!(schema.field_with_name("fk_table_name").is_ok());
        assert_eq!(rows(&fetch(&mut client, info).await), 0);
    }

    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    for t in ["bigint", "double precision", "text", "date", "timestamp"] {
        assert!(names.iter().any(|n| n == t), "{t} in {names:?}");
    }

    let info = client
        .get_sql_info(vec![SqlInfo::SqlIdentifierQuoteChar, SqlInfo::SqlKeywords])
        .await
        .unwrap();
    assert_eq!(rows(&fetch(&mut client, info).await), 2);

    let prepared = client
        .prepare(
            "SELECT region, sum(revenue) AS total FROM sales GROUP BY region".into(),
            None,
        )
        .await
        .unwrap();
    let schema = prepared.dataset_schema().unwrap();
    assert_eq!(schema.field(0).name(), "region");
    assert_eq!(schema.field(1).name(), "total");
}

/// Sends Flight's `CancelFlightInfo` action for `info`.
async fn cancel_flight_info(
    client: &mut FlightSqlServiceClient<Channel>,
    info: &arrow_flight::FlightInfo,
) -> arrow_flight::CancelStatus {
    use prost::Message;
    let request = arrow_flight::CancelFlightInfoRequest::new(info.clone());
    let action = arrow_flight::Action::new("CancelFlightInfo", request.encode_to_vec());
    let mut results: Vec<arrow_flight::Result> = client
        .do_action(action)
        .await
        .expect("CancelFlightInfo")
        .try_collect()
        .await
        .expect("result");
    let result = arrow_flight::CancelFlightInfoResult::decode(results.remove(0).body).unwrap();
    result.status()
}

#[tokio::test]
async fn cancel_flight_info_stops_the_running_query_only() {
    let server = TestServer::spawn();
    let mut client = client(&server).await;
    // A query that would stream for minutes.
    let endless = "SELECT value FROM generate_series(1, 10000000000) AS t(value)";
    let info = client.execute(endless.into(), None).await.unwrap();
    let other = client.execute(endless.into(), None).await.unwrap();
    assert_ne!(
        info.endpoint[0].ticket, other.endpoint[0].ticket,
        "tickets are per FlightInfo"
    );

    // Not running yet: nothing to cancel.
    assert_eq!(
        cancel_flight_info(&mut client, &info).await,
        arrow_flight::CancelStatus::NotCancellable
    );
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = client.do_get(ticket).await.expect("do_get");
    let first = stream.try_next().await.expect("first batch").expect("rows");
    assert!(first.num_rows() > 0);
    // The other FlightInfo is not running: cancelling it leaves this one alone.
    assert_eq!(
        cancel_flight_info(&mut client, &other).await,
        arrow_flight::CancelStatus::NotCancellable
    );
    assert!(stream.try_next().await.expect("still streaming").is_some());

    assert_eq!(
        cancel_flight_info(&mut client, &info).await,
        arrow_flight::CancelStatus::Cancelled
    );
    let error = loop {
        match stream.try_next().await {
            Ok(Some(_)) => continue, // batches already on the way
            Ok(None) => panic!("the stream ended without the cancel error"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        error.contains("57014") && error.contains("user request"),
        "{error}"
    );

    // Recorded as canceled; the server goes on.
    let log = client
        .execute(
            format!(
                "SELECT status FROM system.query_log WHERE statement = '{}' AND protocol = 'flight'",
                endless.replace('\'', "''")
            ),
            None,
        )
        .await
        .unwrap();
    let batches = fetch(&mut client, log).await;
    let status = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .map(|a| a.value(0).to_string());
    assert_eq!(status.as_deref(), Some("canceled"));
}
