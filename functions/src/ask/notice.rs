//! What a statement tells beside its rows: the SQL `ask` ran (a NOTICE for psql) and
//! what `ask` did (a record for the query log).
//!
//! The front ends run each statement inside [`collect_notes`] and send or record what
//! was pushed. Elsewhere nobody collects and pushing does nothing.

use std::cell::RefCell;
use std::future::Future;

/// What one `ask` or `ask_sql` call did.
#[derive(Debug, Clone, PartialEq)]
pub struct AskNote {
    pub question: String,
    /// The SQL that ran, or the last SQL tried when none was valid.
    pub sql: Option<String>,
    /// The model name, or `offline`.
    pub model: String,
    pub tries: usize,
    /// `ok`, or the error.
    pub outcome: String,
}

/// Everything pushed while a statement ran.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Notes {
    /// Messages for the client (pg NOTICE).
    pub notices: Vec<String>,
    pub asks: Vec<AskNote>,
}

impl Notes {
    fn extend(&mut self, other: Notes) {
        self.notices.extend(other.notices);
        self.asks.extend(other.asks);
    }
}

tokio::task_local! {
    static NOTES: RefCell<Notes>;
}

/// Runs `future` and returns what it pushed.
pub async fn collect_notes<F: Future>(future: F) -> (F::Output, Notes) {
    NOTES
        .scope(RefCell::new(Notes::default()), async move {
            let output = future.await;
            let notes = NOTES.with(|n| n.take());
            (output, notes)
        })
        .await
}

/// Adds a notice for the client, if anyone collects them.
pub(crate) fn push(message: String) {
    let _ = NOTES.try_with(|n| n.borrow_mut().notices.push(message));
}

/// Records what an `ask` call did, if anyone collects it.
pub(crate) fn push_ask(note: AskNote) {
    let _ = NOTES.try_with(|n| n.borrow_mut().asks.push(note));
}

/// Hands notes collected elsewhere (on a worker thread) to this task's collector.
pub(crate) fn forward(notes: Notes) {
    let _ = NOTES.try_with(|n| n.borrow_mut().extend(notes));
}
