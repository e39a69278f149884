//! What the server tells its operators: every statement recorded (the audit log and
//! `system.query_log`), who is connected (`system.sessions`), Prometheus metrics, and
//! the per-user rate limit.
//!
//! A front end calls [`Monitor::begin`] when a statement arrives and keeps the returned
//! [`Tracked`] alive until the statement's last row has gone out (the row streams hold
//! clones). The record is written when the last clone is dropped, so a statement that
//! fails, is cancelled, or whose client goes away mid-stream is recorded all the same.

mod audit;
mod metrics;
mod redact;
mod sessions;
mod tables;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use insightflow_functions::ask::Notes;
use parking_lot::Mutex;

pub use audit::{AskRecord, AuditOptions, QueryRecord};
pub use metrics::Metrics;
pub use redact::redact;
pub use sessions::{SessionGuard, SessionRow};
pub use tables::register_system_tables;

use audit::{format_time, AuditLog};
use sessions::Sessions;

/// The front end a statement came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Pg,
    Flight,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Pg => "pg",
            Protocol::Flight => "flight",
        }
    }
}

/// Who runs a statement, and from where.
#[derive(Debug, Clone)]
pub struct Who {
    pub session_id: String,
    pub user: String,
    pub client: String,
    pub protocol: Protocol,
}

/// How much the monitor keeps and allows.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    pub audit: AuditOptions,
    /// Statements per second each user may start (0: no limit); bursts up to the
    /// same number.
    pub rate_limit: u32,
}

/// A statement refused by the rate limit; `wait` is when the next one may start.
#[derive(Debug)]
pub struct RateLimited {
    pub user: String,
    pub per_second: u32,
    pub wait: Duration,
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rate limit exceeded for user \"{}\" ({} statements per second): try again in {:.3} s",
            self.user,
            self.per_second,
            self.wait.as_secs_f64().max(0.001)
        )
    }
}

pub struct Monitor {
    audit: AuditLog,
    metrics: Metrics,
    sessions: Arc<Sessions>,
    limiter: Option<(u32, DefaultKeyedRateLimiter<String>)>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    pub fn open(options: MonitorOptions) -> std::io::Result<Arc<Self>> {
        let limiter = NonZeroU32::new(options.rate_limit)
            .map(|n| (n.get(), RateLimiter::keyed(Quota::per_second(n))));
        Ok(Arc::new(Self {
            audit: AuditLog::open(options.audit)?,
            metrics: Metrics::new(),
            sessions: Arc::default(),
            limiter,
        }))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection(self: &Arc<Self>, protocol: Protocol) -> ConnectionGuard {
        let gauge = self
            .metrics
            .connections
            .with_label_values(&[protocol.as_str()]);
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// A connection turned away at the limit.
    pub fn connection_refused(&self) {
        self.metrics.connections_refused.inc();
    }

    /// Starts a session row in `system.sessions`; it ends when the guard is dropped.
    pub fn open_session(self: &Arc<Self>, protocol: Protocol, client: String) -> SessionGuard {
        let id = self.sessions.open(protocol, client);
        let gauge = self
            .metrics
            .sessions
            .with_label_values(&[protocol.as_str()]);
        gauge.inc();
        SessionGuard {
            sessions: self.sessions.clone(),
            id,
            on_close: Box::new(move || gauge.dec()),
        }
    }

    /// The session of a connected client, and says who it runs as.
    pub fn session_of(&self, protocol: Protocol, client: &str, user: &str) -> String {
        match self.sessions.id_for(protocol, client) {
            Some(id) => {
                self.sessions.update(&id, |row| {
                    if row.user.is_none() {
                        row.user = Some(user.to_string());
                    }
                });
                id
            }
            None => format!("{}-?", protocol.as_str()),
        }
    }

    pub fn name_session_user(&self, id: &str, user: &str) {
        self.sessions
            .update(id, |row| row.user = Some(user.to_string()));
    }

    /// Refuses the statement when `user` has used up their rate.
    pub fn admit(&self, protocol: Protocol, user: &str) -> Result<(), RateLimited> {
        let Some((per_second, limiter)) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&user.to_string()).map_err(|not_until| {
            self.metrics
                .rate_limited
                .with_label_values(&[protocol.as_str()])
                .inc();
            RateLimited {
                user: user.to_string(),
                per_second: *per_second,
                wait: not_until.wait_time_from(DefaultClock::default().now()),
            }
        })
    }

    /// Starts recording a statement.
    pub fn begin(self: &Arc<Self>, who: Who, statement: &str) -> Tracked {
        let statement = redact(statement);
        self.sessions.update(&who.session_id, |row| {
            row.running = Some(statement.clone());
        });
        let query_id = uuid::Uuid::new_v4().simple().to_string();
        tracing::debug!(
            query_id,
            user = who.user,
            protocol = who.protocol.as_str(),
            "statement"
        );
        Tracked(Arc::new(TrackedInner {
            monitor: self.clone(),
            who,
            query_id,
            statement,
            time: Utc::now(),
            start: Instant::now(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            outcome: Mutex::default(),
            discarded: AtomicBool::new(false),
            streams_open: AtomicU64::new(0),
            streams_done: AtomicU64::new(0),
        }))
    }

    /// The recent statements, oldest first.
    pub fn queries(&self) -> Vec<Arc<QueryRecord>> {
        self.audit.recent()
    }

    pub fn sessions(&self) -> Vec<SessionRow> {
        self.sessions.rows()
    }

    fn finish(&self, record: QueryRecord) {
        self.sessions.update(&record.session_id, |row| {
            row.running = None;
            row.statements += 1;
            row.last_statement_at = record.started_at();
        });
        self.metrics.record(&record);
        tracing::info!(
            target: "insightflow::query",
            query_id = record.query_id, user = record.user, protocol = record.protocol,
            status = record.status, rows = record.rows, duration_ms = record.duration_ms,
            "statement finished"
        );
        self.audit.write(record);
    }
}

/// Lowers the open-connection gauge when the connection ends.
pub struct ConnectionGuard(prometheus::IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Default)]
struct Outcome {
    error: Option<(String, String)>,
    ask: Option<AskRecord>,
}

/// A statement being recorded; clones share it, and the last one dropped writes it.
#[derive(Clone)]
pub struct Tracked(Arc<TrackedInner>);

struct TrackedInner {
    monitor: Arc<Monitor>,
    who: Who,
    query_id: String,
    statement: String,
    time: DateTime<Utc>,
    start: Instant,
    rows: AtomicU64,
    bytes: AtomicU64,
    outcome: Mutex<Outcome>,
    discarded: AtomicBool,
    /// Result streams handed to the client, and those that reached their end: one
    /// dropped before its end means the client went away or cancelled.
    streams_open: AtomicU64,
    streams_done: AtomicU64,
}

impl Tracked {
    /// Not a statement after all (a Flight query planned for its schema, which
    /// runs and is recorded when its ticket is fetched): nothing is written.
    pub fn discard(&self) {
        self.0.discarded.store(true, Ordering::Relaxed);
    }

    pub fn query_id(&self) -> &str {
        &self.0.query_id
    }

    /// Rows and bytes sent to the client.
    pub fn sent(&self, rows: u64, bytes: u64) {
        self.0.rows.fetch_add(rows, Ordering::Relaxed);
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Rows a write affected.
    pub fn affected(&self, rows: u64) {
        self.0.rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// The statement failed with `sqlstate`; the first failure is kept.
    pub fn fail(&self, sqlstate: &str, message: &str) {
        let mut outcome = self.0.outcome.lock();
        if outcome.error.is_none() {
            outcome.error = Some((sqlstate.to_string(), redact(message)));
        }
    }

    /// What `ask` did while the statement ran (the last call, if several).
    pub fn noted(&self, notes: &Notes) {
        if let Some(ask) = notes.asks.last() {
            self.0.outcome.lock().ask = Some(AskRecord {
                question: ask.question.clone(),
                sql: ask.sql.clone(),
                model: ask.model.clone(),
                tries: ask.tries as u64,
                outcome: ask.outcome.clone(),
            });
        }
    }

    /// `stream`, with `seen` called on each item and its end recorded: a stream
    /// dropped before its end makes the statement `canceled`.
    pub fn follow<S, T, F>(&self, stream: S, seen: F) -> impl Stream<Item = T> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
        T: Send + 'static,
        F: Fn(&Tracked, &T) + Send + 'static,
    {
        self.0.streams_open.fetch_add(1, Ordering::Relaxed);
        let each = self.clone();
        let end = self.clone();
        let at_end = futures::stream::once(async move {
            end.0.streams_done.fetch_add(1, Ordering::Relaxed);
        })
        .filter_map(|()| futures::future::ready(None::<T>));
        stream.inspect(move |item| seen(&each, item)).chain(at_end)
    }
}

impl Drop for TrackedInner {
    fn drop(&mut self) {
        if self.discarded.load(Ordering::Relaxed) {
            self.monitor
                .sessions
                .update(&self.who.session_id, |row| row.running = None);
            return;
        }
        let mut outcome = std::mem::take(&mut *self.outcome.lock());
        let unfinished =
            self.streams_open.load(Ordering::Relaxed) > self.streams_done.load(Ordering::Relaxed);
        if unfinished && outcome.error.is_none() {
            outcome.error = Some((
                "57014".to_string(),
                "the client stopped reading before the last row (cancelled or disconnected)"
                    .to_string(),
            ));
        }
        let status = match &outcome.error {
            None => "ok",
            Some((code, _)) if code == "57014" => "canceled",
            Some(_) => "error",
        };
        let (sqlstate, error) = match outcome.error {
            Some((code, message)) => (Some(code), Some(message)),
            None => (None, None),
        };
        self.monitor.finish(QueryRecord {
            time: format_time(self.time),
            query_id: std::mem::take(&mut self.query_id),
            session_id: self.who.session_id.clone(),
            user: self.who.user.clone(),
            client: self.who.client.clone(),
            protocol: self.who.protocol.as_str().to_string(),
            statement: std::mem::take(&mut self.statement),
            status: status.to_string(),
            sqlstate,
            error,
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            duration_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            ask: outcome.ask,
        });
    }
}
