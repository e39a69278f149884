//! What a logged-in client can send: every frontend message of a started session.
//!
//! This target finds panics in pgwire 0.41 (and 0.42.1) within seconds, so
//! `scripts/fuzz.sh` does not run it until pgwire is fixed: its decoders read each field
//! from the whole input without checking the message's length or what is left — a
//! Close or Describe that ends at its header (`get_u8` on an empty buffer), a CopyData
//! whose length is below 4 (`len - 4`), a Parse whose parameter count runs past the end
//! of the input (`get_i16`), and so on. The server contains it: each connection runs on
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
