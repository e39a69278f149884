//! The connect-time queries real clients send (captured in ../shared/compat/): each must
//! succeed over the protocol the client uses, or the client never gets to a query.

use crate::common::TestServer;

/// psycopg2 / SQLAlchemy / pandas (simple protocol) at connect.
const SQLALCHEMY_PSYCOPG2: &[&str] = &[
    "BEGIN",
    "SELECT t.oid, typarray\nFROM pg_type t JOIN pg_namespace ns\n    ON typnamespace = ns.oid\nWHERE typname = 'hstore'",
    "ROLLBACK",
    "select pg_catalog.version()",
    "select current_schema()",
    "show transaction isolation level",
    "show standard_conforming_strings",
    "-- ping",
];

/// pgjdbc and Metabase (extended protocol) at connect.
const PGJDBC_METABASE: &[&str] = &[
    "SET extra_float_digits = 3",
    "SET application_name = 'PostgreSQL JDBC Driver'",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    "BEGIN READ ONLY",
    "COMMIT",
];

/// psycopg 3 type introspection (extended protocol, a text parameter).
const PSYCOPG3_TYPEINFO: &str = "SELECT\n    typname AS name, oid, typarray AS array_oid,\n    oid::regtype::text AS regtype, typdelim AS delimiter\nFROM pg_type t\nWHERE t.oid = to_regtype($1)\nORDER BY t.oid";

#[tokio::test]
async fn connect_time_queries_of_real_clients_succeed() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    for sql in SQLALCHEMY_PSYCOPG2 {
        client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("simple: {sql}: {e:?}"));
    }
    for sql in PGJDBC_METABASE {
        client
            .execute(*sql, &[])
            .await
            .unwrap_or_else(|e| panic!("extended: {sql}: {e:?}"));
    }
    let hstore = client.query(PSYCOPG3_TYPEINFO, &[&"hstore"]).await.unwrap();
    assert!(hstore.is_empty(), "no hstore type");
    let int4 = client.query(PSYCOPG3_TYPEINFO, &[&"int4"]).await.unwrap();
    assert_eq!(int4.len(), 1);
}
