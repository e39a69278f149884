//! Managed tables over pgwire: what an INSERT acknowledged is there after `kill -9`,
//! exactly once; readers see whole commits; small inserts are compacted; DROP and
//! TRUNCATE leave nothing behind.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio_postgres::SimpleQueryMessage;

use crate::common::TestServer;

async fn ints(client: &tokio_postgres::Client, sql: &str) -> Vec<i64> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .collect()
}

fn data_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for table in std::fs::read_dir(dir.join("tables")).unwrap().flatten() {
        for f in std::fs::read_dir(table.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "parquet") {
                files.push(f.path());
            }
        }
    }
    files
}

#[tokio::test]
async fn acknowledged_inserts_survive_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let mut server = TestServer::spawn_in(dir.path(), &[]);
        let client = server.pg_client().await;
        if round == 0 {
            client
                .batch_execute("CREATE TABLE events (id BIGINT NOT NULL, note TEXT)")
                .await
                .unwrap();
        }
        // Write in the background; kill at a point that varies by round.
        let writer = {
            let client = server.pg_client().await;
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..10_000u64 {
                    let id = round * 100_000 + i;
                    let sql = format!(
                        "INSERT INTO events VALUES ({id}, 'row {id}'), ({}, NULL)",
                        id + 50_000
                    );
                    match client.simple_query(&sql).await {
                        Ok(_) => acked.extend([id, id + 50_000]),
                        Err(_) => break,
                    }
                }
                acked
            })
        };
        tokio::time::sleep(Duration::from_millis(400 + 350 * round)).await;
        server.kill();
        let acked = writer.await.unwrap();
        assert!(
            !acked.is_empty(),
            "round {round}: some inserts were acknowledged"
        );

        let server = TestServer::spawn_in(dir.path(), &[]);
        let client = server.pg_client().await;
        let ids = ints(
            &client,
            &format!(
                "SELECT id FROM events WHERE id >= {} AND id < {}",
                round * 100_000,
                (round + 1) * 100_000
            ),
        )
        .await;
        let unique: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "round {round}: no row twice");
        for id in &acked {
            assert!(
                unique.contains(&(*id as i64)),
                "round {round}: acknowledged id {id} is missing"
            );
        }
        // At most the one insert in flight at the kill may also have landed.
        assert!(
            ids.len() <= acked.len() + 2,
            "round {round}: {} rows for {} acknowledged",
            ids.len(),
            acked.len()
        );
        drop(client);
    }
}

#[tokio::test]
async fn many_small_inserts_are_compacted_and_readers_see_whole_commits() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_in(dir.path(), &[]);
    let client = server.pg_client().await;
    client
        .batch_execute("CREATE TABLE m (id INT, batch INT)")
        .await
        .unwrap();

    let reader = {
        let client = server.pg_client().await;
        tokio::spawn(async move {
            // Every insert writes 10 rows in one statement: a reader never sees part of one.
            let started = Instant::now();
            let mut reads = 0;
            while started.elapsed() < Duration::from_secs(3) {
                let n = ints(&client, "SELECT count(*) FROM m").await[0];
                assert_eq!(n % 10, 0, "a reader saw a partial insert: {n} rows");
                reads += 1;
            }
            reads
        })
    };
    for b in 0..60 {
        let values: Vec<String> = (0..10).map(|i| format!("({}, {b})", b * 10 + i)).collect();
        client
            .batch_execute(&format!("INSERT INTO m VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
    assert!(reader.await.unwrap() > 0);
    assert_eq!(ints(&client, "SELECT count(*) FROM m").await, vec![600]);
    assert_eq!(
        ints(&client, "SELECT count(DISTINCT id) FROM m").await,
        vec![600]
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            data_files(dir.path())[0]
                .parent()
                .unwrap()
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let live = manifest["files"].as_array().unwrap().len();
    assert!(
        live <= insightflow_catalog::COMPACT_AT + 1,
        "{live} live files after 60 inserts"
    );
    // Replaced files stay until no scan can read them: they go at the next start.
    drop(client);
    let mut server = server;
    server.stop();
    let server = TestServer::spawn_in(dir.path(), &[]);
    assert_eq!(data_files(dir.path()).len(), live);
    let client = server.pg_client().await;
    assert_eq!(
        ints(&client, "SELECT sum(id) FROM m").await,
        vec![(0..600).sum::<i64>()]
    );
}

#[tokio::test]
async fn create_as_truncate_drop_and_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn_in(dir.path(), &["--demo"]);
    let client = server.pg_client().await;
    let created = client
        .simple_query("CREATE TABLE by_region AS SELECT region, sum(revenue) AS revenue FROM sales GROUP BY region")
        .await
        .unwrap();
    assert!(
        created
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(4))),
        "{created:?}"
    );
    client
        .batch_execute("CREATE TABLE gone (x INT); INSERT INTO gone VALUES (1)")
        .await
        .unwrap();
    assert_eq!(data_files(dir.path()).len(), 2);
    client.batch_execute("DROP TABLE gone").await.unwrap();
    assert_eq!(
        data_files(dir.path()).len(),
        1,
        "DROP TABLE removes the files"
    );

    // A write killed before its commit leaves a file no manifest lists: removed at start.
    let table_dir = data_files(dir.path())[0].parent().unwrap().to_path_buf();
    std::fs::write(table_dir.join("orphan.parquet"), b"half a file").unwrap();
    server.stop();
    let server = TestServer::spawn_in(dir.path(), &[]);
    let client = server.pg_client().await;
    assert!(!table_dir.join("orphan.parquet").exists());
    assert_eq!(
        ints(
            &client,
            "SELECT CAST(revenue AS BIGINT) FROM by_region WHERE region = 'East'"
        )
        .await,
        vec![557878]
    );
    client.batch_execute("TRUNCATE by_region").await.unwrap();
    assert_eq!(
        ints(&client, "SELECT count(*) FROM by_region").await,
        vec![0]
    );
    client
        .batch_execute("INSERT INTO by_region VALUES ('Nowhere', 1.0)")
        .await
        .unwrap();
    assert_eq!(
        ints(&client, "SELECT count(*) FROM by_region").await,
        vec![1]
    );

    // Mistakes are clear errors.
    let err = client
        .batch_execute("CREATE TABLE by_region (x INT)")
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "42P07");
    let err = client
        .batch_execute("INSERT INTO by_region VALUES ('x', 'not a number')")
        .await
        .unwrap_err();
    assert!(err.as_db_error().is_some(), "{err}");
    assert_eq!(
        ints(&client, "SELECT count(*) FROM by_region").await,
        vec![1],
        "a failed insert adds nothing"
    );
}

#[tokio::test]
async fn copy_from_stdin_and_to_stdout_with_tokio_postgres() {
    use futures::{SinkExt, TryStreamExt};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_in(dir.path(), &[]);
    let client = server.pg_client().await;
    client
        .batch_execute(
            "CREATE TABLE people (id BIGINT NOT NULL, name TEXT, score DOUBLE PRECISION)",
        )
        .await
        .unwrap();

    // CSV with a header, quoted delimiters and empty (NULL) fields, in two chunks.
    let sink = client
        .copy_in("COPY people FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"id,name,score\n1,\"Smith, Ann\",1.5\n2,",
    ))
    .await
    .unwrap();
    sink.send(bytes::Bytes::from_static(b"Bo,\n3,,7\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 3);

    // Text format: tabs and \N, a column subset (the rest NULL).
    let sink = client
        .copy_in("COPY people (id, name) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"10\tTen\n11\t\\N\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);

    // A bad row fails the whole COPY: nothing of it is committed.
    let sink = client
        .copy_in("COPY people FROM STDIN (FORMAT csv)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"20,ok,1\nnot-a-number,x,2\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert!(err.as_db_error().is_some(), "{err}");
    assert_eq!(ints(&client, "SELECT count(*) FROM people").await, vec![5]);

    let out = client
        .copy_out("COPY (SELECT id, name, score FROM people ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.unwrap();
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect();
    assert_eq!(
        text,
        "id,name,score\n1,\"Smith, Ann\",1.5\n2,Bo,\n3,,7.0\n10,Ten,\n11,,\n"
    );
    let out = client
        .copy_out("COPY people (id, name) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.unwrap();
    assert_eq!(chunks.len(), 5, "one message per row");
    assert!(
        chunks.iter().any(|c| c.as_ref() == b"11\t\\N\n"),
        "{chunks:?}"
    );
}
