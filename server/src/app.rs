//! Start-up: build the engine from the config, make sure `admin` exists, bind every
//! listener, announce the bound addresses in one machine-readable line, and serve
//! until asked to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_flight::flight_service_server::FlightServiceServer;
use insightflow_catalog::CatalogStore;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::ServeConfig;
use crate::engine::{Engine, EngineOptions};
use crate::flight::FlightSqlServer;
use crate::pg::{self, PgHandlers, PgLimits};
use crate::{demo, http};

/// Flight's accepted connections, with Nagle's algorithm off: tonic sets `TCP_NODELAY`
/// only on listeners it binds itself, and with Nagle on every small gRPC response waited
/// for the client's delayed ACK (about 40 ms per Flight SQL call).
fn flight_incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The largest Flight message accepted or sent. Clients send a whole record batch as one
/// message (ADBC bulk ingest of a 100,000-row batch is tens of MB); tonic's default, 4
/// MiB, refused them. Memory stays bounded by this and the roles' `max_file_bytes`.
const FLIGHT_MAX_MESSAGE_BYTES: usize = 256 << 20;

pub const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD_FILE: &str = "admin.password";

/// The addresses the server actually listens on (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddrs {
    pub pg: SocketAddr,
    pub flight: SocketAddr,
    pub http: SocketAddr,
}

impl BoundAddrs {
    /// The one start-up line tools and tests read: JSON on stdout.
    pub fn ready_line(&self) -> String {
        serde_json::json!({
            "insightflow": "ready",
            "pg": self.pg.to_string(),
            "flight": self.flight.to_string(),
            "http": self.http.to_string(),
        })
        .to_string()
    }
}

/// Runs the server until `shutdown` completes.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = Engine::open(&EngineOptions {
        data_dir: config.data_dir.clone(),
        allow_paths: config.allow_paths.clone(),
        datafusion: config.datafusion.clone(),
        llm: config.llm.clone(),
        memory_limit: config.memory_limit,
        rate_limit: config.rate_limit,
    })
    .await?;
    bootstrap_admin(engine.catalog().store(), &config.data_dir)?;
    if config.demo {
        engine
            .as_system(demo::install(&engine))
            .await
            .context("cannot install the demo data")?;
    }

    let pg_listener = bind(config.pg_addr, "pg").await?;
    let flight_listener = bind(config.flight_addr, "flight").await?;
    let http_listener = bind(config.http_addr, "http").await?;
    let addrs = BoundAddrs {
        pg: pg_listener.local_addr()?,
        flight: flight_listener.local_addr()?,
        http: http_listener.local_addr()?,
    };

    let (pg_tls, flight_tls) = match &config.tls {
        Some((cert, key)) => {
            let acceptor = pg::tls_acceptor(cert, key).with_context(|| {
                format!(
                    "cannot load TLS cert {} / key {}",
                    cert.display(),
                    key.display()
                )
            })?;
            let identity =
                tonic::transport::Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?);
            (
                Some(acceptor),
                Some(tonic::transport::ServerTlsConfig::new().identity(identity)),
            )
        }
        None => (None, None),
    };

    let pg_task = tokio::spawn(pg::serve(
        pg_listener,
        Arc::new(PgHandlers::new(
            engine.clone(),
            PgLimits {
                max_connections: config.max_connections,
                statement_timeout: config.statement_timeout,
                require_tls: config.require_tls,
            },
        )),
        pg_tls,
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = flight_tls {
        builder = builder.tls_config(tls)?;
    }
    let mut flight_stop = stop_rx.clone();
    let flight_task = tokio::spawn(
        builder
            .add_service(
                FlightServiceServer::new(FlightSqlServer::new(
                    engine.clone(),
                    config.statement_timeout,
                ))
                .max_decoding_message_size(FLIGHT_MAX_MESSAGE_BYTES)
                .max_encoding_message_size(FLIGHT_MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(flight_incoming(flight_listener), async move {
                let _ = flight_stop.changed().await;
            }),
    );
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, http::router(engine.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_stop.changed().await;
            })
            .await
    });

    info!(pg = %addrs.pg, flight = %addrs.flight, http = %addrs.http, data_dir = %config.data_dir.display(), "listening");
    println!("{}", addrs.ready_line());

    shutdown.await;
    info!("shutting down: no new connections");
    pg_task.abort();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let _ = flight_task.await;
        let _ = http_task.await;
    })
    .await;
    info!("stopped");
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}: is another server using it? Pick another with --{what}-addr"))
}

/// Creates `admin` on first start: the password comes from
/// `INSIGHTFLOW_ADMIN_PASSWORD`, or a random one is written to
/// `<data-dir>/admin.password` (mode 0600).
pub fn bootstrap_admin(store: &CatalogStore, data_dir: &Path) -> anyhow::Result<()> {
    if store.user(ADMIN_USER).is_some() {
        return Ok(());
    }
    let password = match std::env::var("INSIGHTFLOW_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            use rand::distributions::{Alphanumeric, DistString};
            let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 24);
            let path = data_dir.join(ADMIN_PASSWORD_FILE);
            write_private(&path, &password)?;
            info!(path = %path.display(), "generated a password for user admin");
            password
        }
    };
    store.create_user(ADMIN_USER, &password, true)?;
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    Ok(())
}
