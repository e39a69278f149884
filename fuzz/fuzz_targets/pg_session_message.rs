//! What a logged-in client can send: every frontend message of a started session.
//!
//! This target finds a panic in pgwire 0.41 within seconds (a Close or Describe whose
//! length leaves out its body: `get_u8` on an empty buffer), so `scripts/fuzz.sh` does
//! not run it until pgwire is fixed. The server contains it: each connection runs on
//! its own task and a panic there closes only that connection
//! (`tests/e2e/raw_protocol.rs`).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

fuzz_target!(|data: &[u8]| {
    let mut ctx = DecodeContext::default();
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    let mut buf = BytesMut::from(data);
    for _ in 0..10_000 {
        match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(_)) if !buf.is_empty() => continue,
            _ => break,
        }
    }
});
