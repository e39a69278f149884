//! `TestServer`: the real `insightflow` binary on free ports with a temp data dir,
//! killed when dropped. Shared by the end-to-end tests and the sqllogictest runner.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ADMIN_PASSWORD: &str = "test-admin-password";

pub struct TestServer {
    child: Option<Child>,
    /// Kept alive for the server's lifetime (None when the caller owns the dir).
    _temp: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    pub pg: SocketAddr,
    pub flight: SocketAddr,
    pub http: SocketAddr,
}

impl TestServer {
    /// A server with the demo data in a fresh temp dir.
    pub fn spawn() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Self::spawn_in(temp.path(), &["--demo"]);
        server._temp = Some(temp);
        server
    }

    /// A server with the demo data in a fresh temp dir, with extra flags.
    pub fn spawn_with(extra: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut flags = vec!["--demo"];
        flags.extend_from_slice(extra);
        let mut server = Self::spawn_in(temp.path(), &flags);
        server._temp = Some(temp);
        server
    }

    /// A server on `data_dir` (kept after the server stops), with extra flags.
    pub fn spawn_in(data_dir: &Path, extra: &[&str]) -> Self {
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_insightflow"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            // Free loopback ports, unless the test picks its own address.
            .args(
                [
                    ["--pg-addr", "127.0.0.1:0"],
                    ["--flight-addr", "127.0.0.1:0"],
                    ["--http-addr", "127.0.0.1:0"],
                ]
                .into_iter()
                .filter(|[flag, _]| !extra.contains(flag))
                .flatten(),
            )
            .args(extra)
            .env("INSIGHTFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start insightflow");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"insightflow\":\"ready\"") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
                panic!("server did not become ready within 60s; log:\n{log}");
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        let addr = |k: &str| ready[k].as_str().expect(k).parse().expect("address");
        Self {
            pg: addr("pg"),
            flight: addr("flight"),
            http: addr("http"),
            child: Some(child),
            _temp: None,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// A tokio-postgres connection as `admin`.
    pub async fn pg_client(&self) -> tokio_postgres::Client {
        self.pg_client_as("admin", ADMIN_PASSWORD)
            .await
            .expect("connect as admin")
    }

    pub async fn pg_client_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let conn = format!(
            "host={} port={} user={user} password={password} dbname=insightflow",
            self.pg.ip(),
            self.pg.port()
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A Flight SQL client, handshaken as `user`.
    pub async fn flight_client_as(
        &self,
        user: &str,
        password: &str,
    ) -> arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", self.flight))
            .expect("flight address")
            .connect()
            .await
            .expect("connect to flight");
        let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
        client
            .handshake(user, password)
            .await
            .unwrap_or_else(|e| panic!("handshake as {user}: {e}"));
        client
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc_kill(child.id() as i32, 15) };
        let status = child.wait().ok()?;
        status.code()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` over plain HTTP/1.1: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The one integer a query returns (panics with the SQL on any error).
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}
