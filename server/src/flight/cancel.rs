//! Flight SQL cancel: `CancelFlightInfo` (and the older `CancelQuery` action) stop the
//! streams of a FlightInfo's tickets that are running, with 57014 as a pg cancel does.
//!
//! Every DoGet registers its ticket while its stream runs; a statement's ticket carries
//! a fresh id (see `statement_ticket`), so cancelling one FlightInfo stops only the
//! query it started. A ticket that is not running (finished, or not fetched yet)
//! answers `NOT_CANCELLABLE`, as the Flight spec allows.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::{CancelStatus, FlightData, FlightInfo};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tonic::Status;

use crate::error::{grpc_code, sqlstate};

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// The running DoGet streams, by ticket.
#[derive(Debug, Clone, Default)]
pub(super) struct RunningTickets {
    running: Arc<Mutex<HashMap<Bytes, Vec<Arc<Notify>>>>>,
}

impl RunningTickets {
    /// `stream`, ended with 57014 when its ticket is cancelled.
    pub(super) fn cancellable(&self, ticket: Bytes, stream: FlightStream) -> FlightStream {
        let notify = Arc::new(Notify::new());
        self.running
            .lock()
            .entry(ticket.clone())
            .or_default()
            .push(notify.clone());
        let registration = Registration {
            tickets: self.clone(),
            ticket,
            notify: notify.clone(),
        };
        Box::pin(futures::stream::unfold(
            Some((stream, registration)),
            |state| async move {
                let (mut stream, registration) = state?;
                tokio::select! {
                    _ = registration.notify.notified() => Some((Err(canceled()), None)),
                    next = stream.next() => next.map(|item| (item, Some((stream, registration)))),
                }
            },
        ))
    }

    /// Cancels the running streams of `info`'s tickets.
    pub(super) fn cancel(&self, info: &FlightInfo) -> CancelStatus {
        let running = self.running.lock();
        let mut canceled = false;
        for ticket in info.endpoint.iter().filter_map(|e| e.ticket.as_ref()) {
            for notify in running.get(&ticket.ticket).into_iter().flatten() {
                // A permit is kept if the stream is between polls.
                notify.notify_one();
                canceled = true;
            }
        }
        if canceled {
            CancelStatus::Cancelled
        } else {
            CancelStatus::NotCancellable
        }
    }
}

/// Removes a stream's ticket from the running ones when the stream ends.
struct Registration {
    tickets: RunningTickets,
    ticket: Bytes,
    notify: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut running = self.tickets.running.lock();
        if let Some(list) = running.get_mut(&self.ticket) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if list.is_empty() {
                running.remove(&self.ticket);
            }
        }
    }
}

fn canceled() -> Status {
    Status::new(
        grpc_code(sqlstate::QUERY_CANCELED),
        format!(
            "canceling statement due to user request (SQLSTATE {})",
            sqlstate::QUERY_CANCELED
        ),
    )
}
