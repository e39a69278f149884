//! TLS on both protocols from `--tls-cert/--tls-key`.

use std::process::Command;

use arrow_flight::sql::client::FlightSqlServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::common::{TestServer, ADMIN_PASSWORD};

struct Tls {
    dir: tempfile::TempDir,
    cert_pem: String,
}

fn self_signed() -> Tls {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("server.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), cert.key_pair.serialize_pem()).unwrap();
    Tls { dir, cert_pem }
}

#[tokio::test]
async fn pgwire_and_flight_speak_tls_when_a_cert_is_configured() {
    let tls = self_signed();
    let data = tempfile::tempdir().unwrap();
    let cert = tls.dir.path().join("server.pem");
    let key = tls.dir.path().join("server.key");
    let server = TestServer::spawn_in(
        data.path(),
        &[
            "--demo",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );

    // psql insists on TLS with sslmode=require: fails if the server answers 'N'.
    let conn = format!(
        "host=127.0.0.1 port={} user=admin dbname=insightflow sslmode=require",
        server.pg.port()
    );
    let out = Command::new("psql")
        .args([
            conn.as_str(),
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT count(*) FROM products",
        ])
        .env("PGPASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("psql");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.trim(), "8");

    // Flight SQL over gRPC with TLS, trusting the self-signed certificate.
    let channel = Channel::from_shared(format!("https://localhost:{}", server.flight.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("TLS connect");
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake("admin", ADMIN_PASSWORD)
        .await
        .expect("handshake over TLS");
    let info = client.execute("SELECT 1".into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 1);

    // Plain-text gRPC to a TLS port does not get through.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", server.flight.port()))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        let mut c = FlightSqlServiceClient::new(plain);
        assert!(c.handshake("admin", ADMIN_PASSWORD).await.is_err());
    }
}

#[test]
fn a_missing_key_is_a_start_up_error() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_insightflow"))
        .args([
            "serve",
            "--pg-addr",
            "127.0.0.1:0",
            "--flight-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--tls-cert", "/nonexistent/cert.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}
