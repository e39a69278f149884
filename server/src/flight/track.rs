//! The monitor's view of Flight SQL: bearer tokens as sessions, statements recorded
//! with the rows and bytes they send, the rate limit and the statement timeout.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::FlightData;
use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::Status;

use crate::error::{grpc_code, sqlstate, status_sqlstate};
use crate::monitor::{Monitor, Protocol, SessionGuard, Tracked, Who};

/// A token nobody used for this long is forgotten: the client must handshake again.
pub(super) const TOKEN_IDLE: Duration = Duration::from_secs(3600);

/// What a bearer token stands for.
pub(super) struct Token {
    pub(super) user: String,
    pub(super) client: String,
    session: SessionGuard,
    last_used: Instant,
}

/// Bearer tokens, each one a session in `system.sessions`.
#[derive(Default, Clone)]
pub(super) struct Tokens(Arc<Mutex<HashMap<String, Token>>>);

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new token for `user`; tokens idle for longer than [`TOKEN_IDLE`] go.
    pub(super) fn issue(&self, monitor: &Arc<Monitor>, user: String, client: String) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let session = monitor.open_session(Protocol::Flight, client.clone());
        monitor.name_session_user(session.id(), &user);
        let mut tokens = self.lock();
        tokens.retain(|_, t| t.last_used.elapsed() < TOKEN_IDLE);
        tokens.insert(
            token.clone(),
            Token {
                user,
                client,
                session,
                last_used: Instant::now(),
            },
        );
        token
    }

    /// Who a token belongs to, and marks it used.
    pub(super) fn who(&self, token: &str) -> Option<Who> {
        let mut tokens = self.lock();
        let t = tokens.get_mut(token)?;
        if t.last_used.elapsed() >= TOKEN_IDLE {
            tokens.remove(token);
            return None;
        }
        t.last_used = Instant::now();
        Some(Who {
            session_id: t.session.id().to_string(),
            user: t.user.clone(),
            client: t.client.clone(),
            protocol: Protocol::Flight,
        })
    }
}

/// Starts the record of a statement, or refuses it at the user's rate limit.
pub(super) fn admit(monitor: &Arc<Monitor>, who: &Who, sql: &str) -> Result<Tracked, Status> {
    let tracked = monitor.begin(who.clone(), sql);
    if let Err(limited) = monitor.admit(Protocol::Flight, &who.user) {
        let status = Status::new(
            grpc_code(sqlstate::RATE_LIMITED),
            format!("{limited} (SQLSTATE {})", sqlstate::RATE_LIMITED),
        );
        failed(&tracked, &status);
        return Err(status);
    }
    Ok(tracked)
}

/// Records the error a statement ended with.
pub(super) fn failed(tracked: &Tracked, status: &Status) {
    tracked.fail(&status_sqlstate(status), status.message());
}

/// Records the outcome of a statement that returns a count.
pub(super) fn counted(tracked: &Tracked, result: &Result<i64, Status>) {
    match result {
        Ok(rows) => tracked.affected((*rows).max(0) as u64),
        Err(status) => failed(tracked, status),
    }
}

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// Follows a result stream to its end (rows counted by the caller, bytes here), and
/// ends it with SQLSTATE 57014 at `deadline`.
pub(super) fn follow(
    tracked: Tracked,
    stream: FlightStream,
    deadline: Option<Instant>,
) -> FlightStream {
    let bounded: FlightStream = match deadline {
        None => stream,
        Some(deadline) => Box::pin(futures::stream::unfold(
            Some(stream),
            move |state| async move {
                let mut stream = state?;
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => Some((Err(timed_out()), None)),
                    next = stream.next() => next.map(|item| (item, Some(stream))),
                }
            },
        )),
    };
    Box::pin(tracked.follow(bounded, |tracked, data| match data {
        Ok(data) => tracked.sent(0, (data.data_header.len() + data.data_body.len()) as u64),
        Err(status) => failed(tracked, status),
    }))
}

pub(super) fn timed_out() -> Status {
    Status::new(
        grpc_code(sqlstate::QUERY_CANCELED),
        format!(
            "canceling statement due to statement timeout (SQLSTATE {})",
            sqlstate::QUERY_CANCELED
        ),
    )
}
