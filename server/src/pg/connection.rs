//! One pg connection: TLS negotiation, then every message checked ([`super::frames`])
//! before pgwire decodes it.
//!
//! pgwire's own `process_socket` reads from the socket straight into its decoders,
//! which panic on some malformed messages. This is the same loop over the same public
//! pieces (`negotiate_tls`, `process_message`, `process_error`), with [`CheckedStream`]
//! between the (decrypted) socket and pgwire's framing: pgwire only ever sees whole,
//! well-formed messages, and a client that sends anything else gets the error
//! PostgreSQL would send (FATAL, SQLSTATE 08P01) before the connection closes.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::ErrorInfo;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use pgwire::tokio::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};
use tokio_util::io::poll_read_buf;
use tracing::info;

use super::frames::{self, Phase, Violation};

/// As pgwire: a client that has not logged in after this long is dropped.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Rows are written to the socket once this much is buffered (tokio-util's default,
/// 8 KiB, costs a `write` every 50-odd rows of a wide result).
const WRITE_BATCH: usize = 256 * 1024;
/// How much [`CheckedStream`] asks the socket for at a time (COPY data comes in bulk).
const READ_CHUNK: usize = 64 * 1024;

/// Serves one client until it leaves, breaks the protocol or the socket fails.
pub(crate) async fn serve_connection<H: PgWireServerHandlers>(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
) -> io::Result<()> {
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        socket = negotiate_tls(socket, tls) => socket?,
    };
    // None: a direct TLS handshake without TLS configured.
    let Some(socket) = negotiated else {
        return Ok(());
    };
    let old = socket.into_parts();
    let mut parts = FramedParts::new(CheckedStream::new(old.io, old.read_buf), old.codec);
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);
    socket.set_backpressure_boundary(WRITE_BATCH);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let logging_in = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if logging_in {
            tokio::select! {
                _ = &mut startup_timeout => None,
                message = socket.next() => message,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else { break };
        // Terminate: the client waits for the server to close (asyncpg does).
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let in_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let handled = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = handled {
            errors.on_error(&socket, &mut e);
            process_error(&mut socket, e, in_extended_query).await?;
        }
    }
    if let Some(violation) = socket.get_ref().violation.clone() {
        info!(%violation, "closing a connection that broke the protocol");
        let error = ErrorInfo::new(
            "FATAL".to_owned(),
            "08P01".to_owned(),
            format!("invalid frontend message: {violation}"),
        );
        socket
            .send(PgWireBackendMessage::ErrorResponse(error.into()))
            .await?;
    }
    Ok(())
}

/// A client stream that hands on only whole messages [`frames::check`] accepted.
/// After a malformed one it reads as an error (and remembers why).
pub(crate) struct CheckedStream<S> {
    inner: S,
    /// Bytes read and not yet handed on; the first `checked` are accepted messages.
    buf: BytesMut,
    checked: usize,
    phase: Phase,
    violation: Option<Violation>,
}

impl<S> CheckedStream<S> {
    /// `read` holds what was read from `inner` before (during TLS negotiation).
    pub(crate) fn new(inner: S, read: BytesMut) -> Self {
        Self {
            inner,
            buf: read,
            checked: 0,
            phase: Phase::Startup,
            violation: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CheckedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.checked > 0 {
                let n = this.checked.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.checked -= n;
                return Poll::Ready(Ok(()));
            }
            if let Some(v) = &this.violation {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, v.0.clone())));
            }
            match frames::check(&this.buf, &mut this.phase) {
                Ok(0) => {}
                Ok(n) => {
                    this.checked = n;
                    continue;
                }
                Err(v) => {
                    this.violation = Some(v);
                    continue;
                }
            }
            // Not a whole message yet: read more. At the end of the input a partial
            // message is dropped, as PostgreSQL does.
            this.buf.reserve(READ_CHUNK);
            if ready!(poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf))? == 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CheckedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
