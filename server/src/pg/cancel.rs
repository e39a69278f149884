//! Cancel requests and `statement_timeout` that reach a query while it streams rows.
//!
//! pgwire cancels (and datafusion-postgres times out) only while a handler plans a
//! query; DataFusion does its work later, while the row stream is polled. So every
//! query's row stream is registered here under the connection's backend pid, and a
//! cancel request with the right secret key — or the session's `statement_timeout` —
//! stops it: the stream ends with SQLSTATE 57014 and dropping it stops DataFusion's
//! work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use futures::StreamExt;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::results::{Response, SendableRowStream};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

use crate::error::sqlstate::QUERY_CANCELED;

/// The row stream of each connection's latest query, by backend pid. Entries are weak:
/// a finished or dropped stream leaves nothing to cancel, and is pruned.
#[derive(Default)]
pub(crate) struct RunningQueries {
    queries: Mutex<HashMap<i32, (SecretKey, Weak<Notify>)>>,
}

impl RunningQueries {
    /// Makes `response`'s rows stop when a cancel request for `pid` arrives, or when
    /// `timeout` has passed.
    pub(crate) fn watch(
        &self,
        pid: i32,
        key: SecretKey,
        timeout: Option<Duration>,
        response: &mut Response,
    ) {
        let Response::Query(query) = response else {
            return;
        };
        let notify = Arc::new(Notify::new());
        let mut queries = self.lock();
        queries.retain(|_, (_, n)| n.strong_count() > 0);
        queries.insert(pid, (key, Arc::downgrade(&notify)));
        drop(queries);
        let rows = std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
        let deadline = timeout.map(|t| Instant::now() + t);
        query.data_rows = cancellable(rows, notify, deadline);
    }

    fn cancel(&self, pid: i32, key: &SecretKey) -> bool {
        match self.lock().get(&pid) {
            Some((expected, notify)) if expected.eq_value(key) => match notify.upgrade() {
                Some(notify) => {
                    notify.notify_one();
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (SecretKey, Weak<Notify>)>> {
        self.queries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn canceled(message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        QUERY_CANCELED.to_string(),
        message.to_string(),
    )))
}

fn cancellable(
    rows: SendableRowStream,
    notify: Arc<Notify>,
    deadline: Option<Instant>,
) -> SendableRowStream {
    Box::pin(futures::stream::unfold(
        Some((rows, notify)),
        move |state| async move {
            let (mut rows, notify) = state?;
            let timeout = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = notify.notified() => Some((Err(canceled("canceling statement due to user request")), None)),
                _ = timeout => Some((Err(canceled("canceling statement due to statement timeout")), None)),
                next = rows.next() => next.map(|item| (item, Some((rows, notify)))),
            }
        },
    ))
}

/// pgwire's cancel handler (cancels planning), plus the running row streams.
pub(crate) struct PgCancel {
    planning: DefaultCancelHandler,
    running: Arc<RunningQueries>,
}

impl PgCancel {
    pub(crate) fn new(planning: DefaultCancelHandler, running: Arc<RunningQueries>) -> Self {
        Self { planning, running }
    }
}

#[async_trait]
impl CancelHandler for PgCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let streaming = self.running.cancel(request.pid, &request.secret_key);
        tracing::info!(pid = request.pid, streaming, "cancel request");
        self.planning.on_cancel_request(request).await;
    }
}
