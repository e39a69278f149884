//! Messages for the client beside the rows: the SQL `ask` ran.
//!
//! The pg front end runs each query inside [`collect_notices`] and sends what was
//! pushed as NOTICE messages, so psql shows the generated SQL. Elsewhere nobody
//! collects and [`push`] does nothing.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static NOTICES: RefCell<Vec<String>>;
}

/// Runs `future` and returns what it pushed.
pub async fn collect_notices<F: Future>(future: F) -> (F::Output, Vec<String>) {
    NOTICES
        .scope(RefCell::new(Vec::new()), async move {
            let output = future.await;
            let notices = NOTICES.with(|n| n.take());
            (output, notices)
        })
        .await
}

/// Adds a notice for the client, if anyone collects them.
pub(crate) fn push(message: String) {
    let _ = NOTICES.try_with(|n| n.borrow_mut().push(message));
}
