//! What a client can send once started: every frontend message of a session.
//!
//! The server checks each message ([`frames::check`], the server's own file) before
//! pgwire decodes it, because pgwire's decoders read fields past the end of a message.
//! Properties: whatever the check accepts, pgwire decodes without a panic and to exactly
//! the message's bytes (nothing left over to be read as the next message), including the
//! SASL messages the start-up handler coerces `p` messages into.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

#[path = "../../server/src/pg/frames.rs"]
#[allow(dead_code)]
mod frames;

use frames::Phase;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where in the session the input starts.
    let Some((&first, mut data)) = data.split_first() else {
        return;
    };
    let mut phase = Phase::Session {
        sasl_started: first & 1 == 1,
    };
    let mut ctx = DecodeContext::default();
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    for _ in 0..10_000 {
        let before = phase;
        let Ok(len) = frames::check(data, &mut phase) else {
            return;
        };
        if len == 0 {
            return;
        }
        // Decode each accepted message on its own, as the server's framing sees it.
        let mut sasl_started = matches!(before, Phase::Session { sasl_started: true });
        let mut rest = &data[..len];
        while !rest.is_empty() {
            let size = 1 + i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let mut buf = BytesMut::from(&rest[..size]);
            rest = &rest[size..];
            let message = PgWireFrontendMessage::decode(&mut buf, &ctx)
                .expect("an accepted message decodes")
                .expect("an accepted message is whole");
            assert!(buf.is_empty(), "the decoder left {} bytes of {message:?}", buf.len());
            if let PgWireFrontendMessage::PasswordMessageFamily(p) = message {
                if sasl_started {
                    p.into_sasl_response().expect("a SASLResponse");
                } else {
                    p.into_sasl_initial_response()
                        .expect("an accepted SASLInitialResponse");
                    sasl_started = true;
                }
            }
        }
        data = &data[len..];
    }
});
