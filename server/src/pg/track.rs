//! The monitor's view of pg statements: who runs them, how many rows and bytes go
//! out, how they end.

use pgwire::api::results::Response;
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::CommandComplete;

use crate::engine::Engine;
use crate::error::{pg_error_class, sqlstate};
use crate::monitor::{Protocol, Tracked, Who};

/// Starts the record of `sql` from `client`.
pub(crate) fn begin<C: ClientInfo + ?Sized>(
    engine: &Engine,
    client: &C,
    user: &str,
    sql: &str,
) -> Tracked {
    let monitor = engine.monitor();
    let address = client.socket_addr().to_string();
    let who = Who {
        session_id: monitor.session_of(Protocol::Pg, &address, user),
        user: user.to_string(),
        client: address,
        protocol: Protocol::Pg,
    };
    monitor.begin(who, sql)
}

/// Starts the record of `sql`, or refuses it at the user's rate limit (SQLSTATE
/// 53400, recorded too).
pub(crate) fn admit<C: ClientInfo + ?Sized>(
    engine: &Engine,
    client: &C,
    user: &str,
    sql: &str,
) -> PgWireResult<Tracked> {
    let tracked = begin(engine, client, user, sql);
    if let Err(limited) = engine.monitor().admit(Protocol::Pg, user) {
        let message = limited.to_string();
        tracked.fail(sqlstate::RATE_LIMITED, &message);
        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            sqlstate::RATE_LIMITED.into(),
            message,
        ))));
    }
    Ok(tracked)
}

/// Records an error the statement ended with.
pub(crate) fn failed(tracked: &Tracked, error: &PgWireError) {
    let (code, message) = pg_error_class(error);
    tracked.fail(&code, &message);
}

/// Follows each response to its end: rows streamed, rows a write affected, errors.
/// Every stream holds a clone of `tracked`; the record is written when the last
/// one is done.
pub(crate) fn follow(tracked: &Tracked, responses: &mut [Response]) {
    for response in responses {
        match response {
            Response::Query(query) => {
                let rows =
                    std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
                query.data_rows = Box::pin(tracked.follow(rows, |tracked, row| match row {
                    Ok(row) => tracked.sent(1, row.data.len() as u64),
                    Err(e) => failed(tracked, e),
                }));
            }
            Response::CopyOut(copy) => {
                let data =
                    std::mem::replace(&mut copy.data_stream, Box::pin(futures::stream::empty()));
                copy.data_stream = Box::pin(tracked.follow(data, |tracked, data| match data {
                    Ok(data) => tracked.sent(1, data.data.len() as u64),
                    Err(e) => failed(tracked, e),
                }));
            }
            Response::Execution(tag) => {
                let text = CommandComplete::from(tag.clone()).tag;
                if let Some(rows) = text.rsplit(' ').next().and_then(|n| n.parse().ok()) {
                    tracked.affected(rows);
                }
            }
            Response::Error(info) => tracked.fail(&info.code, &info.message),
            _ => {}
        }
    }
}
