//! Who is calling: HTTP basic credentials at Handshake, the bearer token it hands out
//! on every later call.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use insightflow_catalog::Caller;
use tonic::{Request, Status};

use super::FlightSqlServer;
use crate::monitor::Who;

impl FlightSqlServer {
    /// The user behind a request's bearer token.
    pub(super) fn authenticate<T>(&self, req: &Request<T>) -> Result<String, Status> {
        Ok(self.who(req)?.user)
    }

    /// Who sent a request: the session and user behind its bearer token.
    pub(super) fn who<T>(&self, req: &Request<T>) -> Result<Who, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no authorization header: call Handshake with basic auth first",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("expected 'authorization: Bearer <token>'"))?;
        self.tokens
            .who(token)
            .ok_or_else(|| Status::unauthenticated("unknown or expired token: handshake again"))
    }

    /// The user of HTTP basic credentials (Handshake), if the password is right.
    pub(super) fn check_basic(&self, header: &str) -> Result<String, Status> {
        let encoded = header.strip_prefix("Basic ").ok_or_else(|| {
            Status::unauthenticated("expected 'authorization: Basic <base64(user:password)>'")
        })?;
        // Go's gRPC clients (ADBC) send unpadded base64.
        let decoded = STANDARD_NO_PAD
            .decode(encoded.trim().trim_end_matches('='))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("malformed basic credentials"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("malformed basic credentials"))?;
        self.engine
            .catalog()
            .store()
            .check_password(user, password)
            .map(|u| u.name)
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "password authentication failed for user \"{user}\""
                ))
            })
    }

    /// The caller behind a request's bearer token: every statement runs as them.
    pub(super) fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        Ok(self.engine.caller(&self.authenticate(req)?))
    }
}
