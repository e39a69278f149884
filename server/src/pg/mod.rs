//! The Postgres wire protocol front end: listener, TLS, handlers.

mod admission;
mod auth;
mod cancel;
mod connection;
mod copy;
mod copy_text;
mod frames;
mod results;
mod rows;
mod session;
mod show;
mod temp_tables;
mod track;

use std::fs::File;
use std::io::BufReader;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use futures::FutureExt;

use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::{ConnectionManager, ErrorHandler};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn, Instrument};

use crate::engine::Engine;
use crate::monitor::Protocol;
use admission::{ConnectionCap, ConnectionHandlers};
use auth::{CatalogAuthSource, PgParameters};
use cancel::{PgCancel, RunningQueries};
use session::{PgErrors, PgSession};

/// What each pg connection may use.
#[derive(Debug, Clone, Copy)]
pub struct PgLimits {
    pub max_connections: usize,
    /// For sessions that did not `SET statement_timeout`.
    pub statement_timeout: Option<std::time::Duration>,
    /// Refuse plain-text connections from other machines.
    pub require_tls: bool,
}

impl Default for PgLimits {
    fn default() -> Self {
        Self {
            max_connections: 100,
            statement_timeout: None,
            require_tls: false,
        }
    }
}

/// Everything a pg connection needs; one per server.
pub struct PgHandlers {
    engine: Engine,
    limits: PgLimits,
    cap: Arc<ConnectionCap>,
    running: Arc<RunningQueries>,
    parameters: Arc<PgParameters>,
    auth: Arc<CatalogAuthSource>,
    connections: Arc<ConnectionManager>,
    cancel: Arc<PgCancel>,
}

impl PgHandlers {
    pub fn new(engine: Engine, limits: PgLimits) -> Self {
        let store = engine.catalog().store().clone();
        let connections = Arc::new(ConnectionManager::new());
        let running = Arc::new(RunningQueries::default());
        Self {
            running: running.clone(),
            cap: ConnectionCap::new(limits.max_connections),
            limits,
            engine,
            parameters: Arc::new(PgParameters::new(store.clone())),
            auth: Arc::new(CatalogAuthSource::new(store)),
            cancel: Arc::new(PgCancel::new(
                DefaultCancelHandler::new(connections.clone()),
                running,
            )),
            connections,
        }
    }

    /// The query handlers of a new connection.
    pub(crate) fn new_session(&self) -> Arc<PgSession> {
        Arc::new(PgSession::new(
            self.engine.clone(),
            self.running.clone(),
            self.limits.statement_timeout,
        ))
    }

    pub(crate) fn max_connections(&self) -> usize {
        self.limits.max_connections
    }

    pub(crate) fn require_tls(&self) -> bool {
        self.limits.require_tls
    }
}

/// What every connection shares; [`ConnectionHandlers`] adds each one's own session.
impl PgHandlers {
    /// A fresh handler per connection: it holds that connection's SASL state.
    pub(crate) fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(
            SASLAuthStartupHandler::new(self.parameters.clone())
                .with_scram(ScramAuth::new(self.auth.clone()))
                .with_connection_manager(self.connections.clone()),
        )
    }

    pub(crate) fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(PgErrors)
    }

    pub(crate) fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts pg connections until the task is dropped.
pub async fn serve(listener: TcpListener, handlers: Arc<PgHandlers>, tls: Option<TlsAcceptor>) {
    loop {
        match listener.accept().await {
            Ok((socket, addr)) => {
                let _ = socket.set_nodelay(true);
                let place = handlers.cap.enter();
                let monitor = handlers.engine.monitor().clone();
                if !place.admitted {
                    monitor.connection_refused();
                }
                let own_handlers = ConnectionHandlers {
                    session: handlers.new_session(),
                    shared: handlers.clone(),
                    admitted: place.admitted,
                };
                let tls = tls.clone();
                let span = tracing::info_span!("pg_connection", client = %addr);
                tokio::spawn(
                    async move {
                        let _open = monitor.connection(Protocol::Pg);
                        let _session = place
                            .admitted
                            .then(|| monitor.open_session(Protocol::Pg, addr.to_string()));
                        // Messages are checked before pgwire decodes them (see
                        // `connection`); should a panic still happen in a handler, it
                        // ends this connection, not the server.
                        let session = connection::serve_connection(socket, tls, own_handlers);
                        match AssertUnwindSafe(session).catch_unwind().await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => info!(error = %e, "connection ended with an error"),
                            Err(_) => warn!(
                                "connection closed: the client sent a malformed protocol message"
                            ),
                        }
                        drop(place);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Loads a PEM certificate chain and private key for TLS.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = rustls_pemfile::certs(&mut BufReader::new(File::open(cert)?))
        .collect::<Result<Vec<CertificateDer>, _>>()?;
    let key: PrivateKeyDer = rustls_pemfile::private_key(&mut BufReader::new(File::open(key)?))?
        .ok_or_else(|| anyhow::anyhow!("no private key found in {}", key.display()))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
