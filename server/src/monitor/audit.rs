//! The audit log: one JSON line per statement under `<data-dir>/audit/`, rotated by
//! size, and the recent records kept in memory for `system.query_log`.
//!
//! Each line is written and flushed to the operating system before the statement's
//! record is visible in `system.query_log`; lines are not fsynced (a power cut may lose
//! the last ones, a killed server does not). At start the newest file's records are read
//! back so `system.query_log` survives a restart.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// What `ask` did inside a statement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AskRecord {
    pub question: String,
    pub sql: Option<String>,
    pub model: String,
    pub tries: u64,
    pub outcome: String,
}

/// One statement, as the audit log and `system.query_log` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryRecord {
    /// When the statement started (RFC 3339, UTC).
    pub time: String,
    pub query_id: String,
    pub session_id: String,
    pub user: String,
    pub client: String,
    /// `pg` or `flight`.
    pub protocol: String,
    /// The statement with secrets replaced by `***`.
    pub statement: String,
    /// `ok`, `error` or `canceled`.
    pub status: String,
    pub sqlstate: Option<String>,
    pub error: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<AskRecord>,
}

impl QueryRecord {
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Where and how much to keep.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub dir: PathBuf,
    /// A new file starts when the current one reaches this size.
    pub max_file_bytes: u64,
    /// Older files beyond this many are deleted.
    pub max_files: usize,
    /// Records kept in memory for `system.query_log`.
    pub recent: usize,
}

impl AuditOptions {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("audit"),
            max_file_bytes: 64 << 20,
            max_files: 16,
            recent: 10_000,
        }
    }
}

struct Current {
    file: File,
    path: PathBuf,
    size: u64,
}

pub struct AuditLog {
    options: AuditOptions,
    current: Mutex<Option<Current>>,
    recent: Mutex<VecDeque<Arc<QueryRecord>>>,
}

impl AuditLog {
    /// Opens the audit directory and reads back the newest file's records.
    pub fn open(options: AuditOptions) -> std::io::Result<Self> {
        std::fs::create_dir_all(&options.dir)?;
        let mut recent = VecDeque::new();
        if let Some(newest) = log_files(&options.dir)?.pop() {
            for line in BufReader::new(File::open(&newest)?).lines() {
                // A line cut short by a kill is skipped, not fatal.
                if let Ok(record) = serde_json::from_str::<QueryRecord>(&line?) {
                    if recent.len() == options.recent {
                        recent.pop_front();
                    }
                    recent.push_back(Arc::new(record));
                }
            }
        }
        Ok(Self {
            options,
            current: Mutex::new(None),
            recent: Mutex::new(recent),
        })
    }

    /// Appends `record` to the file and to the recent records.
    pub fn write(&self, record: QueryRecord) {
        let mut line = serde_json::to_string(&record).unwrap_or_default();
        line.push('\n');
        if let Err(e) = self.append(line.as_bytes()) {
            let file = self.current.lock().as_ref().map(|c| c.path.clone());
            let file = file.unwrap_or_else(|| self.options.dir.clone());
            tracing::error!(error = %e, file = %file.display(), "cannot write the audit log");
        }
        let mut recent = self.recent.lock();
        if recent.len() >= self.options.recent {
            recent.pop_front();
        }
        recent.push_back(Arc::new(record));
    }

    /// The records kept in memory, oldest first.
    pub fn recent(&self) -> Vec<Arc<QueryRecord>> {
        self.recent.lock().iter().cloned().collect()
    }

    fn append(&self, line: &[u8]) -> std::io::Result<()> {
        let mut current = self.current.lock();
        let full = current
            .as_ref()
            .is_some_and(|c| c.size + line.len() as u64 > self.options.max_file_bytes);
        if current.is_none() || full {
            *current = Some(self.next_file(current.take())?);
        }
        let Some(c) = current.as_mut() else {
            return Ok(());
        };
        c.file.write_all(line)?;
        c.size += line.len() as u64;
        Ok(())
    }

    /// The file to append to: the newest one if it has room, else a new one; old
    /// files beyond the limit are removed.
    fn next_file(&self, previous: Option<Current>) -> std::io::Result<Current> {
        let dir = &self.options.dir;
        let reuse = match previous {
            None => log_files(dir)?.pop().filter(|p| {
                std::fs::metadata(p).is_ok_and(|m| m.len() < self.options.max_file_bytes)
            }),
            Some(_) => None,
        };
        let path = reuse.unwrap_or_else(|| {
            let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
            dir.join(format!("queries-{stamp}.jsonl"))
        });
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut size = file.metadata()?.len();
        if size > 0 && !ends_with_newline(&path)? {
            // A line cut short by a kill: the next record starts on a line of its own.
            file.write_all(b"\n")?;
            size += 1;
        }
        let mut files = log_files(dir)?;
        while files.len() > self.options.max_files {
            let oldest = files.remove(0);
            if oldest != path {
                let _ = std::fs::remove_file(&oldest);
            }
        }
        tracing::debug!(path = %path.display(), "audit log file");
        Ok(Current { file, path, size })
    }

    #[cfg(test)]
    fn current_path(&self) -> Option<PathBuf> {
        self.current.lock().as_ref().map(|c| c.path.clone())
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The audit files of `dir`, oldest first (their names sort by time).
fn log_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("queries-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> QueryRecord {
        QueryRecord {
            time: format_time(Utc::now()),
            query_id: format!("q{n}"),
            session_id: "pg-1".into(),
            user: "admin".into(),
            client: "127.0.0.1:1".into(),
            protocol: "pg".into(),
            statement: format!("SELECT {n}"),
            status: "ok".into(),
            sqlstate: None,
            error: None,
            rows: 1,
            bytes: 10,
            duration_ms: 0.5,
            ask: None,
        }
    }

    #[test]
    fn rotates_by_size_keeps_the_newest_files_and_reads_back_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = AuditOptions::new(dir.path());
        options.max_file_bytes = 1000;
        options.max_files = 3;
        let log = AuditLog::open(options.clone()).unwrap();
        let mut paths = std::collections::BTreeSet::new();
        for n in 0..60 {
            log.write(record(n));
            paths.insert(log.current_path().unwrap());
        }
        assert!(paths.len() > 3, "the log rotated: {paths:?}");
        let files = log_files(&options.dir).unwrap();
        assert_eq!(files.len(), 3);
        for file in &files {
            assert!(std::fs::metadata(file).unwrap().len() <= 1000);
        }
        // The newest file ends with the last record; a restart reads it back.
        drop(log);
        let reopened = AuditLog::open(options).unwrap();
        let recent = reopened.recent();
        assert_eq!(recent.last().unwrap().statement, "SELECT 59");
        assert!(!recent.is_empty() && recent.len() < 60);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let options = AuditOptions::new(dir.path());
        let log = AuditLog::open(options.clone()).unwrap();
        log.write(record(1));
        let path = log.current_path().unwrap();
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"time\": \"2026-").unwrap();
        let reopened = AuditLog::open(options).unwrap();
        assert_eq!(reopened.recent().len(), 1);
        reopened.write(record(2));
        assert_eq!(reopened.recent().len(), 2);
        // The record after the torn line is readable after another restart.
        drop(reopened);
        let again = AuditLog::open(AuditOptions::new(dir.path())).unwrap();
        let statements: Vec<_> = again.recent().iter().map(|r| r.statement.clone()).collect();
        assert_eq!(statements, ["SELECT 1", "SELECT 2"]);
    }
}
