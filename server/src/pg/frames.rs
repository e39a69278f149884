//! Frontend messages checked against their own length before pgwire decodes them.
//!
//! pgwire's decoders (0.41 and 0.42 alike) read each field from the whole input
//! without checking it against the message's length: a Close that ends at its header,
//! a CopyData whose length is below 4, a Parse whose parameter count runs past the
//! input each panic inside the decoder, and a message with bytes left after its
//! fields is read as the start of the next one. [`check`] walks every field of every
//! message the way PostgreSQL's own server does and accepts a message only when its
//! fields fill its length exactly; the connection hands pgwire nothing else (see
//! `connection.rs`) and ends with SQLSTATE 08P01 instead.
//!
//! This file depends on nothing but `std`, so the `pg_session_message` fuzz target
//! compiles it as it is and checks that pgwire decodes everything it accepts.

use std::fmt;

/// The longest Query, Parse, Bind or CopyData (PostgreSQL's and pgwire's limit).
pub const MAX_MESSAGE: usize = 0x3fff_fffe;
/// The longest of the other messages (pgwire's limit; names are at most 63 bytes).
pub const MAX_SMALL_MESSAGE: usize = 10_000;
/// PostgreSQL's limit on a start-up packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP: usize = 10_000;

/// Request codes that take the place of a protocol version in an untyped packet.
const CANCEL_REQUEST: i32 = 80_877_102;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;

/// Where in the conversation the client is: it decides how the next bytes frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Untyped packets (length first): requests for TLS, GSS or cancel, then the
    /// start-up message.
    Startup,
    /// Typed messages. The first `p` is a SASLInitialResponse (the server
    /// authenticates with SCRAM only); later ones are SASLResponses.
    Session { sasl_started: bool },
}

/// Why a message was refused, for the client's error and the server's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the messages at the front of `input` and advances `phase` past them.
///
/// Returns how many leading bytes are whole, well-formed messages (0 when the first
/// one is not complete yet), or the violation when the first message is malformed.
/// A malformed message after good ones is reported by the next call, which starts at it.
pub fn check(input: &[u8], phase: &mut Phase) -> Result<usize, Violation> {
    let mut done = 0;
    loop {
        match check_one(&input[done..], phase) {
            Ok(Some(len)) => done += len,
            Ok(None) => return Ok(done),
            Err(v) if done == 0 => return Err(v),
            Err(_) => return Ok(done),
        }
    }
}

/// The length of the first message if it is complete and well-formed.
fn check_one(input: &[u8], phase: &mut Phase) -> Result<Option<usize>, Violation> {
    match *phase {
        Phase::Startup => {
            let Some(len) = read_len(input, 0) else {
                return Ok(None);
            };
            if !(8..=MAX_STARTUP).contains(&len) {
                return Err(Violation(format!(
                    "invalid length of startup packet: {len}"
                )));
            }
            if input.len() < len {
                return Ok(None);
            }
            let code = i32::from_be_bytes([input[4], input[5], input[6], input[7]]);
            if !matches!(code, CANCEL_REQUEST | SSL_REQUEST | GSSENC_REQUEST) {
                *phase = Phase::Session {
                    sasl_started: false,
                };
            }
            Ok(Some(len))
        }
        Phase::Session { sasl_started } => {
            let (Some(&tag), Some(len)) = (input.first(), read_len(input, 1)) else {
                return Ok(None);
            };
            let max = match tag {
                b'Q' | b'P' | b'B' | b'd' => MAX_MESSAGE,
                _ => MAX_SMALL_MESSAGE,
            };
            if !(4..=max).contains(&len) {
                return Err(Violation(format!(
                    "invalid length {len} of message type '{}'",
                    tag.escape_ascii()
                )));
            }
            if input.len() < 1 + len {
                return Ok(None);
            }
            let mut body = Body(&input[5..1 + len]);
            body_fields(tag, &mut body, sasl_started)
                .and_then(|()| body.end())
                .map_err(|what| {
                    Violation(format!(
                        "malformed message of type '{}': {what}",
                        tag.escape_ascii()
                    ))
                })?;
            if tag == b'p' {
                *phase = Phase::Session { sasl_started: true };
            }
            Ok(Some(1 + len))
        }
    }
}

/// Walks the fields of one message body (protocol 3.0, "Message Formats").
fn body_fields(tag: u8, b: &mut Body, sasl_started: bool) -> Result<(), &'static str> {
    match tag {
        // Query, CopyFail
        b'Q' | b'f' => b.cstring(),
        // Parse: statement, query, parameter types
        b'P' => {
            b.cstring()?;
            b.cstring()?;
            let types = b.count()?;
            b.bytes(4 * types)
        }
        // Bind: portal, statement, parameter formats, parameters, result formats
        b'B' => {
            b.cstring()?;
            b.cstring()?;
            let formats = b.count()?;
            b.bytes(2 * formats)?;
            for _ in 0..b.count()? {
                match b.i32()? {
                    -1 => {}
                    n if n >= 0 => b.bytes(n as usize)?,
                    _ => return Err("a parameter length below -1"),
                }
            }
            let formats = b.count()?;
            b.bytes(2 * formats)
        }
        // Describe, Close: 'S'tatement or 'P'ortal, then its name
        b'D' | b'C' => match b.u8()? {
            b'S' | b'P' => b.cstring(),
            _ => Err("the target is neither 'S' (statement) nor 'P' (portal)"),
        },
        // Execute: portal, row limit
        b'E' => {
            b.cstring()?;
            b.i32().map(drop)
        }
        // Sync, Flush, Terminate, CopyDone
        b'S' | b'H' | b'X' | b'c' => Ok(()),
        // CopyData
        b'd' => b.rest(),
        // SASLInitialResponse: mechanism, then the client's first message or -1
        b'p' if !sasl_started => {
            b.cstring()?;
            match b.i32()? {
                -1 => Ok(()),
                n if n >= 0 => b.bytes(n as usize),
                _ => Err("a response length below -1"),
            }
        }
        // SASLResponse
        b'p' => b.rest(),
        _ => Err("no such frontend message type"),
    }
}

/// The big-endian length at `at`, if the input holds it (negative reads as too large).
fn read_len(input: &[u8], at: usize) -> Option<usize> {
    let len = i32::from_be_bytes(*input.get(at..)?.first_chunk::<4>()?);
    Some(usize::try_from(len).unwrap_or(usize::MAX))
}

/// A message body, read field by field; every read checks what is left.
struct Body<'a>(&'a [u8]);

impl Body<'_> {
    fn bytes(&mut self, n: usize) -> Result<(), &'static str> {
        if n > self.0.len() {
            return Err("a field runs past the end of the message");
        }
        self.0 = &self.0[n..];
        Ok(())
    }

    fn rest(&mut self) -> Result<(), &'static str> {
        self.0 = &[];
        Ok(())
    }

    /// The next `N` bytes of a fixed-size field.
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (field, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("the message ends before its fields")?;
        self.0 = rest;
        Ok(*field)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        self.take::<1>().map(|[b]| b)
    }

    fn i32(&mut self) -> Result<i32, &'static str> {
        self.take().map(i32::from_be_bytes)
    }

    /// An Int16 count, which cannot be negative.
    fn count(&mut self) -> Result<usize, &'static str> {
        let n = i16::from_be_bytes(self.take()?);
        usize::try_from(n).map_err(|_| "a negative count")
    }

    /// A NUL-terminated string.
    fn cstring(&mut self) -> Result<(), &'static str> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or("a string without its terminating NUL")?;
        self.0 = &self.0[end + 1..];
        Ok(())
    }

    fn end(&self) -> Result<(), &'static str> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err("bytes left after the last field"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn session() -> Phase {
        Phase::Session { sasl_started: true }
    }

    #[test]
    fn whole_messages_pass_and_a_partial_one_waits() {
        let mut input = message(b'Q', b"SELECT 1\0");
        input.extend(message(b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x17"));
        input.extend(message(
            b'B',
            b"\0s1\0\0\x01\0\0\0\x01\0\0\0\x011\0\x01\0\x01",
        ));
        input.extend(message(b'D', b"P\0"));
        input.extend(message(b'E', b"\0\0\0\0\0"));
        input.extend(message(b'S', b""));
        let whole = input.len();
        input.extend(&message(b'Q', b"SELECT 2\0")[..7]);
        assert_eq!(check(&input, &mut session()), Ok(whole));
        assert_eq!(check(&input[whole..], &mut session()), Ok(0));
    }

    #[test]
    fn fields_that_do_not_fill_their_length_exactly_are_refused() {
        for bad in [
            message(b'C', b""),                                   // Close without a target
            message(b'D', b"X\0"),                                // Describe of neither S nor P
            message(b'P', b"\0SELECT 1\0\0\x02\0\0"),             // 2 types, room for half of one
            message(b'P', b"\0SELECT 1\0\xff\xff"),               // negative count
            message(b'B', b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0"), // length -2
            message(b'Q', b"SELECT 1"),                           // no NUL
            message(b'Q', b"SELECT 1\0extra"),                    // bytes after the string
            message(b'S', b"x"),
            message(b'F', b"\0\0\0\0"),    // FunctionCall: not served
            b"d\0\0\0\x02".to_vec(),       // length below 4
            b"Q\x7f\xff\xff\xff".to_vec(), // past the largest message
            b"D\0\0\x27\x15".to_vec(),     // a Describe of 10,005 bytes
        ] {
            assert!(check(&bad, &mut session()).is_err(), "{bad:?}");
        }
        // After good messages, those come first and the bad one next.
        let mut input = message(b'S', b"");
        input.extend(message(b'C', b""));
        assert_eq!(check(&input, &mut session()), Ok(5));
        assert!(check(&input[5..], &mut session()).is_err());
    }

    #[test]
    fn startup_packets_then_typed_messages_and_sasl() {
        let mut phase = Phase::Startup;
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(check(&ssl, &mut phase), Ok(8));
        assert_eq!(phase, Phase::Startup);
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend(b"user\0admin\0\0");
        startup[3] = startup.len() as u8;
        assert_eq!(check(&startup, &mut phase), Ok(startup.len()));
        assert_eq!(
            phase,
            Phase::Session {
                sasl_started: false
            }
        );
        // The first `p` must be a whole SASLInitialResponse; later ones are opaque.
        assert!(check(&message(b'p', b"secret\0"), &mut phase.clone()).is_err());
        let initial = message(b'p', b"SCRAM-SHA-256\0\0\0\0\x03n,,");
        assert_eq!(check(&initial, &mut phase), Ok(initial.len()));
        assert_eq!(check(&message(b'p', b"c=biws"), &mut phase), Ok(11));
        assert!(check(&[0, 0, 0, 4, 0, 0, 0, 0], &mut Phase::Startup).is_err());
    }
}
