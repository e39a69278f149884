//! Who is connected: one row per pg connection or Flight token, for `system.sessions`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::Protocol;

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub session_id: String,
    pub user: Option<String>,
    pub client: String,
    pub protocol: Protocol,
    pub connected_at: DateTime<Utc>,
    pub last_statement_at: Option<DateTime<Utc>>,
    pub statements: u64,
    /// The running statement (redacted), if one runs.
    pub running: Option<String>,
}

#[derive(Default)]
pub struct Sessions {
    rows: Mutex<HashMap<String, SessionRow>>,
    /// `protocol/client address` → session id, for front ends that know the socket.
    by_client: Mutex<HashMap<String, String>>,
    next: AtomicU64,
}

impl Sessions {
    pub(super) fn open(&self, protocol: Protocol, client: String) -> String {
        let id = format!(
            "{}-{}",
            protocol.as_str(),
            self.next.fetch_add(1, Ordering::Relaxed) + 1
        );
        self.by_client
            .lock()
            .insert(format!("{}/{client}", protocol.as_str()), id.clone());
        self.rows.lock().insert(
            id.clone(),
            SessionRow {
                session_id: id.clone(),
                user: None,
                client,
                protocol,
                connected_at: Utc::now(),
                last_statement_at: None,
                statements: 0,
                running: None,
            },
        );
        id
    }

    pub(super) fn close(&self, id: &str) {
        if let Some(row) = self.rows.lock().remove(id) {
            self.by_client
                .lock()
                .remove(&format!("{}/{}", row.protocol.as_str(), row.client));
        }
    }

    pub(super) fn id_for(&self, protocol: Protocol, client: &str) -> Option<String> {
        self.by_client
            .lock()
            .get(&format!("{}/{client}", protocol.as_str()))
            .cloned()
    }

    pub(super) fn update(&self, id: &str, change: impl FnOnce(&mut SessionRow)) {
        if let Some(row) = self.rows.lock().get_mut(id) {
            change(row);
        }
    }

    pub fn rows(&self) -> Vec<SessionRow> {
        let mut rows: Vec<SessionRow> = self.rows.lock().values().cloned().collect();
        rows.sort_by_key(|row| row.connected_at);
        rows
    }
}

/// Closes its session when dropped (the connection ended, the token expired).
pub struct SessionGuard {
    pub(super) sessions: Arc<Sessions>,
    pub(super) id: String,
    pub(super) on_close: Box<dyn Fn() + Send + Sync>,
}

impl SessionGuard {
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.close(&self.id);
        (self.on_close)();
    }
}
