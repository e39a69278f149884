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

/// A test CA and a server certificate it signed for `localhost`.
struct Ca {
    dir: tempfile::TempDir,
}

impl Ca {
    fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let named = |name: &str| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, name);
            dn
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Subject and issuer must differ, or the server's certificate looks self-signed.
        ca_params.distinguished_name = named("InsightFlow test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server_params.distinguished_name = named("localhost");
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
}

/// Runs one query with psql; its output, or the error psql printed.
fn psql(conn: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([conn, "-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// This machine's address on its network (not loopback).
fn network_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // Connecting a UDP socket sends nothing; it only picks the route.
    socket
        .connect("192.0.2.255:9")
        .or_else(|_| socket.connect("10.255.255.255:9"))
        .expect("this test needs a network interface besides loopback");
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "no network address: {ip}"
    );
    ip
}

#[tokio::test]
async fn verify_full_against_a_test_ca_and_plain_text_refused_from_other_machines() {
    let ca = Ca::new();
    let data = tempfile::tempdir().unwrap();
    let (cert, key) = (ca.path("server.pem"), ca.path("server.key"));
    let server = TestServer::spawn_in(
        data.path(),
        &[
            "--demo",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--require-tls",
            "--pg-addr",
            "0.0.0.0:0",
        ],
    );
    let port = server.pg.port();

    // psql checks the chain up to the test CA and the host name.
    let verified = format!(
        "host=localhost port={port} user=admin dbname=insightflow sslmode=verify-full sslrootcert={}",
        ca.path("ca.pem")
    );
    assert_eq!(
        psql(&verified, "SELECT count(*) FROM products").unwrap(),
        "8"
    );
    // Another CA does not vouch for this server: verification really happens.
    let other = self_signed();
    let wrong_ca = format!(
        "host=localhost port={port} user=admin dbname=insightflow sslmode=verify-full sslrootcert={}",
        other.dir.path().join("server.pem").display()
    );
    let err = psql(&wrong_ca, "SELECT 1").unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");

    // From this machine plain text is still allowed; from another address it is not.
    let local = format!(
        "host=127.0.0.1 port={port} user=admin password={ADMIN_PASSWORD} dbname=insightflow"
    );
    let (client, conn) = tokio_postgres::connect(&local, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.simple_query("SELECT 1").await.unwrap();
    let remote_ip = network_address();
    let remote = format!(
        "host={remote_ip} port={port} user=admin password={ADMIN_PASSWORD} dbname=insightflow"
    );
    let err = tokio_postgres::connect(&remote, tokio_postgres::NoTls)
        .await
        .map(|_| ())
        .expect_err("plain text from a network address");
    assert_eq!(err.code().map(|c| c.code()), Some("28000"), "{err:?}");
    let over_tls =
        format!("host={remote_ip} port={port} user=admin dbname=insightflow sslmode=require");
    assert_eq!(psql(&over_tls, "SELECT 1").unwrap(), "1");

    // Flight SQL against the same CA.
    let channel = Channel::from_shared(format!("https://localhost:{}", server.flight.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(
                    std::fs::read(ca.path("ca.pem")).unwrap(),
                ))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("TLS connect with the CA");
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake("admin", ADMIN_PASSWORD)
        .await
        .expect("handshake");
}
