//! Broken protocol bytes from an authenticated session: the connection ends, the server
//! goes on. A raw socket speaks the protocol by hand (SCRAM from `postgres-protocol`)
//! so that, once logged in, it can send what no driver would.

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestServer, ADMIN_PASSWORD};

/// A raw connection, logged in as admin and ready for queries.
async fn logged_in(server: &TestServer) -> TcpStream {
    let mut socket = TcpStream::connect(server.pg).await.unwrap();
    let mut out = BytesMut::new();
    frontend::startup_message([("user", "admin"), ("database", "insightflow")], &mut out).unwrap();
    socket.write_all(&out).await.unwrap();
    let mut scram = None;
    let mut input = BytesMut::new();
    loop {
        let message = loop {
            if let Some(m) = Message::parse(&mut input).unwrap() {
                break m;
            }
            assert!(
                socket.read_buf(&mut input).await.unwrap() > 0,
                "closed during login"
            );
        };
        out.clear();
        match message {
            Message::AuthenticationSasl(_) => {
                let s = ScramSha256::new(ADMIN_PASSWORD.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut out).unwrap();
                scram = Some(s);
            }
            Message::AuthenticationSaslContinue(body) => {
                let s = scram.as_mut().unwrap();
                s.update(body.data()).unwrap();
                frontend::sasl_response(s.message(), &mut out).unwrap();
            }
            Message::AuthenticationSaslFinal(body) => {
                scram.as_mut().unwrap().finish(body.data()).unwrap();
            }
            Message::ReadyForQuery(_) => return socket,
            Message::ErrorResponse(_) => panic!("login refused"),
            _ => {}
        }
        socket.write_all(&out).await.unwrap();
    }
}

/// Reads until the server closes the connection or `limit` passes; true if closed.
async fn closes(socket: &mut TcpStream, limit: std::time::Duration) -> bool {
    let mut sink = BytesMut::new();
    tokio::time::timeout(limit, async {
        loop {
            match socket.read_buf(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => sink.advance(sink.len()),
            }
        }
    })
    .await
    .is_ok()
}

/// The SQLSTATE of the next ErrorResponse, or None if the connection ends first.
async fn error_code(socket: &mut TcpStream) -> Option<String> {
    let mut input = BytesMut::new();
    loop {
        // Backend messages: type, length, body; an ErrorResponse body is fields of a
        // type byte and a NUL-terminated string, ended by a 0.
        while input.len() >= 5 {
            let len = u32::from_be_bytes([input[1], input[2], input[3], input[4]]) as usize;
            if input.len() < 1 + len {
                break;
            }
            let message = input.split_to(1 + len);
            if message[0] != b'E' {
                continue;
            }
            let mut fields = &message[5..];
            while let [kind, rest @ ..] = fields {
                let end = rest.iter().position(|&b| b == 0)?;
                if *kind == b'C' {
                    return Some(String::from_utf8_lossy(&rest[..end]).into_owned());
                }
                fields = &rest[end + 1..];
            }
        }
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.read_buf(&mut input),
        );
        match read.await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

async fn still_serves(server: &TestServer) {
    let n: i64 = server
        .pg_client()
        .await
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .expect("the server still serves")
        .get(0);
    assert_eq!(n, 2000);
}

#[tokio::test]
async fn malformed_messages_after_login_end_the_connection_not_the_server() {
    let mut server = TestServer::spawn();
    // Messages whose declared length leaves out their body (Describe, Close, Execute,
    // Bind, Parse), a length below its own 4 bytes, a type byte no one defined, a Parse
    // whose parameter count runs past its end, a CopyData of length 0, and a Query with
    // bytes after its string.
    for bytes in [
        &b"D\0\0\0\x04"[..],
        b"C\0\0\0\x04",
        b"E\0\0\0\x04",
        b"B\0\0\0\x04",
        b"P\0\0\0\x05\0",
        b"Q\0\0\0\x03",
        b"\xfe\0\0\0\x08abcd",
        b"P\0\0\0\x09\0x\0\x7f\xff",
        b"d\0\0\0\0",
        b"Q\0\0\0\x0dSELECT\0 1",
    ] {
        let mut socket = logged_in(&server).await;
        socket.write_all(bytes).await.unwrap();
        // As PostgreSQL: a FATAL protocol_violation, then the connection closes.
        assert_eq!(
            error_code(&mut socket).await.as_deref(),
            Some("08P01"),
            "after {bytes:?}"
        );
        assert!(closes(&mut socket, std::time::Duration::from_secs(5)).await);
        assert!(server.is_running(), "after {bytes:?}");
        still_serves(&server).await;
    }
    // Random bytes after a good login, seeded.
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..40 {
        let mut socket = logged_in(&server).await;
        let len = rng.gen_range(1..64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Mostly plausible type bytes, to get past the first check.
        bytes[0] = b"QPBEDCSHXdcfF"[rng.gen_range(0..13)];
        socket.write_all(&bytes).await.unwrap();
        let _ = closes(&mut socket, std::time::Duration::from_millis(50)).await;
    }
    assert!(server.is_running());
    still_serves(&server).await;
}
