//! Who gets in: the connection cap, and the per-connection bookkeeping (open
//! connections gauge, the `system.sessions` row).
//!
//! A connection over `max_connections` still goes through the protocol's opening
//! (SSL negotiation, start-up message) so the client can read why it was turned away:
//! FATAL 53300, like Postgres' "sorry, too many clients already". Cancel requests come
//! on connections of their own and are never refused.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::StartupHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::session::PgSession;
use super::PgHandlers;
use crate::error::sqlstate::{INVALID_AUTHORIZATION, TOO_MANY_CONNECTIONS};

/// Counts open pg connections against the cap.
#[derive(Debug)]
pub(crate) struct ConnectionCap {
    max: usize,
    open: AtomicUsize,
}

impl ConnectionCap {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: AtomicUsize::new(0),
        })
    }

    /// Takes a place; `admitted` is false when the cap was already reached.
    pub(crate) fn enter(self: &Arc<Self>) -> Place {
        let before = self.open.fetch_add(1, Ordering::SeqCst);
        Place {
            cap: self.clone(),
            admitted: before < self.max,
        }
    }
}

/// A connection's place; dropping it frees the place.
pub(crate) struct Place {
    cap: Arc<ConnectionCap>,
    pub(crate) admitted: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.cap.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The handlers of one connection: the shared ones, with a start-up that refuses the
/// connection when it is over the cap.
pub(crate) struct ConnectionHandlers {
    pub(crate) shared: Arc<PgHandlers>,
    /// This connection's query handlers and settings.
    pub(crate) session: Arc<PgSession>,
    pub(crate) admitted: bool,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Admission {
            inner: self.shared.startup_handler(),
            admitted: self.admitted,
            max: self.shared.max_connections(),
            require_tls: self.shared.require_tls(),
        })
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::new(super::copy::PgCopy {
            ins: self.session.copy_ins.clone(),
        })
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        self.shared.error_handler()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.shared.cancel_handler()
    }
}

struct Admission<S> {
    inner: Arc<S>,
    admitted: bool,
    max: usize,
    require_tls: bool,
}

/// With `--require-tls`, clients on other machines must encrypt; this machine's own
/// (loopback) clients may still connect in plain text.
pub(crate) fn refuses_plain_text(require_tls: bool, secure: bool, client: IpAddr) -> bool {
    require_tls && !secure && !client.is_loopback()
}

#[async_trait]
impl<S: StartupHandler> StartupHandler for Admission<S> {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !self.admitted {
            tracing::warn!(client = %client.socket_addr(), max = self.max, "connection refused: max_connections reached");
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                TOO_MANY_CONNECTIONS.into(),
                format!(
                    "sorry, too many clients already: this server allows {} connections (max_connections); close idle ones or raise the limit",
                    self.max
                ),
            ))));
        }
        if refuses_plain_text(
            self.require_tls,
            client.is_secure(),
            client.socket_addr().ip(),
        ) {
            tracing::warn!(client = %client.socket_addr(), "plain-text connection refused: TLS is required");
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                INVALID_AUTHORIZATION.into(),
                format!(
                    "connections from {} must use TLS: connect with sslmode=require (or verify-full)",
                    client.socket_addr().ip()
                ),
            ))));
        }
        self.inner.on_startup(client, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::refuses_plain_text;

    #[test]
    fn plain_text_is_refused_only_from_other_machines_and_only_when_required() {
        let remote = "10.1.2.3".parse().unwrap();
        let local = "127.0.0.1".parse().unwrap();
        let local6 = "::1".parse().unwrap();
        assert!(refuses_plain_text(true, false, remote));
        assert!(!refuses_plain_text(true, true, remote));
        assert!(!refuses_plain_text(true, false, local));
        assert!(!refuses_plain_text(true, false, local6));
        assert!(!refuses_plain_text(false, false, remote));
    }
}
