//! psql itself: connection, meta-commands and a query against the demo data.

use std::process::Command;

use crate::common::{TestServer, ADMIN_PASSWORD};

fn psql(server: &TestServer, password: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.pg.port().to_string(),
            "-U",
            "admin",
            "-d",
            "insightflow",
        ])
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed (the test command installs postgresql-client)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn psql_queries_and_meta_commands() {
    let server = TestServer::spawn();
    let (ok, out) = psql(
        &server,
        ADMIN_PASSWORD,
        &[
            "-A",
            "-t",
            "-c",
            "SELECT count(*) FROM sales WHERE region = 'North'",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "488");
    let (ok, out) = psql(&server, ADMIN_PASSWORD, &["-c", "\\dt"]);
    assert!(
        ok && out.contains("sales") && out.contains("customers") && out.contains("products"),
        "{out}"
    );
    let (ok, out) = psql(&server, ADMIN_PASSWORD, &["-c", "\\d sales"]);
    assert!(
        ok && out.contains("order_date") && out.contains("revenue"),
        "{out}"
    );
    let (ok, out) = psql(&server, ADMIN_PASSWORD, &["-c", "\\dn"]);
    assert!(ok && out.contains("public"), "{out}");
    let (ok, out) = psql(&server, ADMIN_PASSWORD, &["-c", "\\l"]);
    assert!(ok && out.contains("insightflow"), "{out}");
    // Malformed SQL, then a good query in the same psql session.
    let (_, out) = psql(
        &server,
        ADMIN_PASSWORD,
        &[
            "-v",
            "ON_ERROR_STOP=0",
            "-A",
            "-t",
            "-c",
            "SELEC 1",
            "-c",
            "SELECT 40 + 2",
        ],
    );
    assert!(out.contains("ERROR"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "42"), "{out}");
}

#[tokio::test]
async fn psql_creates_external_tables_from_files() {
    let server = TestServer::spawn();
    std::fs::write(
        server.data_dir.join("files/cities.csv"),
        "city,pop\nOslo,700000\nBergen,290000\n",
    )
    .unwrap();
    let (ok, out) = psql(
        &server,
        ADMIN_PASSWORD,
        &[
            "-c",
            "CREATE EXTERNAL TABLE cities STORED AS CSV LOCATION 'cities.csv' OPTIONS ('format.has_header' 'true')",
            "-A",
            "-t",
            "-c",
            "SELECT city FROM cities ORDER BY pop DESC",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("CREATE TABLE") || out.contains("Oslo\nBergen"),
        "{out}"
    );
    assert!(out.contains("Oslo\nBergen"), "{out}");
}

#[tokio::test]
async fn psql_profiles_a_table() {
    let server = TestServer::spawn();
    let (ok, out) = psql(
        &server,
        ADMIN_PASSWORD,
        &["-A", "-t", "-F", ",", "-c", "SELECT column_name, row_count, distinct_count FROM profile('products') ORDER BY column_name"],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "category,8,3\nname,8,8\nproduct_id,8,8\nunit_price,8,8"
    );
}

#[tokio::test]
async fn psql_wrong_password_fails() {
    let server = TestServer::spawn();
    let (ok, out) = psql(&server, "not-the-password", &["-c", "SELECT 1"]);
    assert!(!ok, "{out}");
    assert!(
        out.to_lowercase()
            .contains("password authentication failed"),
        "{out}"
    );
}

#[tokio::test]
async fn psql_asks_a_question_and_shows_the_sql_that_ran() {
    let server = TestServer::spawn();
    let (ok, out) = psql(
        &server,
        ADMIN_PASSWORD,
        &[
            "-A",
            "-t",
            "-F",
            ",",
            "-c",
            "SELECT * FROM ask('top 2 regions by revenue')",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("NOTICE:  ask: SELECT region, sum(revenue) AS total_revenue FROM sales GROUP BY 1 ORDER BY total_revenue DESC, 1 LIMIT 2"),
        "{out}"
    );
    assert!(out.contains("East,557878.5\nSouth,539455"), "{out}");
}

#[tokio::test]
async fn psql_copies_in_and_out() {
    let server = TestServer::spawn();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    std::fs::write(&input, "id,city\n1,Oslo\n2,\"Bergen, Vestland\"\n").unwrap();
    let (ok, out) = psql(
        &server,
        ADMIN_PASSWORD,
        &[
            "-c",
            "CREATE TABLE cities (id INT, city TEXT)",
            "-c",
            &format!(
                "\\copy cities from '{}' with (format csv, header)",
                input.display()
            ),
            "-c",
            &format!(
                "\\copy (SELECT * FROM cities ORDER BY id) to '{}' with (format csv, header)",
                output.display()
            ),
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("COPY 2"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id,city\n1,Oslo\n2,\"Bergen, Vestland\"\n"
    );
}
