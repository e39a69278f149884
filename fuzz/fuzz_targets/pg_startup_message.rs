//! What an unauthenticated client can send: the bytes before and during start-up go
//! through pgwire's frontend decoder, which must answer with a message, "need more
//! bytes" or an error, and never panic or loop.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

fuzz_target!(|data: &[u8]| {
    // Before SSL negotiation, and before the start-up message.
    for (ssl, startup) in [(true, true), (false, true)] {
        let mut ctx = DecodeContext::default();
        ctx.awaiting_frontend_ssl = ssl;
        ctx.awaiting_frontend_startup = startup;
        decode_all(data, &ctx);
    }
});

fn decode_all(data: &[u8], ctx: &DecodeContext) {
    let mut buf = BytesMut::from(data);
    for _ in 0..10_000 {
        match PgWireFrontendMessage::decode(&mut buf, ctx) {
            Ok(Some(_)) if !buf.is_empty() => continue,
            _ => break,
        }
    }
}
