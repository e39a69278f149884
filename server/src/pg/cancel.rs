//! Cancel requests and `statement_timeout` that reach a query while it streams rows.
//!
//! pgwire cancels (and datafusion-postgres times out) only while a handler plans a
//! query; DataFusion does its work later, while the row stream is polled. So every
//! query's row stream is registered here under the connection's backend pid, and a
//! cancel request with the right secret key — or the session's `statement_timeout` —
//! stops it: the stream ends with SQLSTATE 57014 and dropping it stops DataFusion's
//! work.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::results::{Response, SendableRowStream};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant, Sleep};

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
    Box::pin(Cancellable {
        rows,
        canceled: Box::pin(notify.notified_owned()),
        deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
        since_check: CHECK_EVERY,
        done: false,
    })
}

/// Rows between two looks at the cancel signal and the deadline while rows flow; a
/// stalled stream (DataFusion still working) is woken by either at once.
const CHECK_EVERY: u32 = 256;

/// `rows` until a cancel request or the deadline. The cancel and timer futures live as
/// long as the stream (registered once, not once per row).
struct Cancellable {
    rows: SendableRowStream,
    canceled: Pin<Box<OwnedNotified>>,
    deadline: Option<Pin<Box<Sleep>>>,
    since_check: u32,
    done: bool,
}

impl Cancellable {
    fn stopped(&mut self, cx: &mut Context<'_>) -> Option<PgWireError> {
        self.since_check = 0;
        if self.canceled.as_mut().poll(cx).is_ready() {
            return Some(canceled("canceling statement due to user request"));
        }
        let deadline = self.deadline.as_mut()?;
        deadline
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| canceled("canceling statement due to statement timeout"))
    }
}

impl Stream for Cancellable {
    type Item = <SendableRowStream as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.since_check >= CHECK_EVERY {
            if let Some(error) = this.stopped(cx) {
                this.done = true;
                return Poll::Ready(Some(Err(error)));
            }
        }
        match this.rows.poll_next_unpin(cx) {
            Poll::Ready(Some(row)) => {
                this.since_check += 1;
                Poll::Ready(Some(row))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.stopped(cx) {
                Some(error) => {
                    this.done = true;
                    Poll::Ready(Some(Err(error)))
                }
                None => Poll::Pending,
            },
        }
    }
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
