//! The catalog file: what the user created, written atomically.
//!
//! The whole catalog is one small JSON document. A change builds the next version in
//! memory, writes it to `catalog.json.tmp`, fsyncs it, renames it over `catalog.json`
//! and fsyncs the directory, so after a crash the file is either the old or the new
//! version, never a torn mix. Only then does the in-memory copy change.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::access::GrantDef;
use crate::error::{Error, Result};
use crate::secrets::{has_embedded_password, is_secret_key, Sealer};
use crate::users::UserDef;

const FILE_NAME: &str = "catalog.json";
const FORMAT_VERSION: u32 = 1;

/// An external table as the user defined it; replayed as `CREATE EXTERNAL TABLE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalTableDef {
    pub schema: String,
    pub name: String,
    pub file_type: String,
    pub locations: Vec<String>,
    /// Column definitions as SQL (`"id" BIGINT NOT NULL`); empty means inferred.
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub partition_cols: Vec<String>,
    #[serde(default)]
    pub options: Vec<(String, String)>,
}

/// A view: its name and the statement that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub schema: String,
    pub name: String,
    /// The whole `CREATE VIEW` statement, replayed as-is.
    pub sql: String,
}

/// A managed table: Parquet files under `<data-dir>/tables/<dir>`, listed by its
/// manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagedTableDef {
    pub schema: String,
    pub name: String,
    /// The table's directory under `<data-dir>/tables/`.
    pub dir: String,
    /// `(name, Arrow type, nullable)` per column.
    pub columns: Vec<(String, String, bool)>,
}

/// One table-like object, in creation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectDef {
    ExternalTable(ExternalTableDef),
    View(ViewDef),
    ManagedTable(ManagedTableDef),
}

impl ObjectDef {
    pub fn schema(&self) -> &str {
        match self {
            ObjectDef::ExternalTable(t) => &t.schema,
            ObjectDef::View(v) => &v.schema,
            ObjectDef::ManagedTable(t) => &t.schema,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ObjectDef::ExternalTable(t) => &t.name,
            ObjectDef::View(v) => &v.name,
            ObjectDef::ManagedTable(t) => &t.name,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CatalogFile {
    pub(crate) format_version: u32,
    pub(crate) schemas: Vec<String>,
    pub(crate) objects: Vec<ObjectDef>,
    pub(crate) users: Vec<UserDef>,
    #[serde(default)]
    pub(crate) grants: Vec<GrantDef>,
}

impl CatalogFile {
    pub(crate) fn find_object(&self, schema: &str, name: &str) -> Option<usize> {
        self.objects
            .iter()
            .position(|o| o.schema() == schema && o.name() == name)
    }
}

/// The catalog file of one data dir.
#[derive(Debug)]
pub struct CatalogStore {
    path: PathBuf,
    state: Mutex<CatalogFile>,
    sealer: Sealer,
}

impl CatalogStore {
    /// Opens `<data_dir>/catalog.json`, creating an empty catalog if there is none.
    pub fn open(data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir).map_err(|source| io_err(data_dir, source))?;
        let path = data_dir.join(FILE_NAME);
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt {
                path: path.display().to_string(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CatalogFile {
                format_version: FORMAT_VERSION,
                ..Default::default()
            },
            Err(source) => return Err(io_err(&path, source)),
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
            sealer: Sealer::open(data_dir)?,
        })
    }

    /// `def` with its secrets sealed, as it is written to the catalog file.
    pub fn sealed(&self, mut def: ExternalTableDef) -> Result<ExternalTableDef> {
        for location in &mut def.locations {
            if has_embedded_password(location) {
                *location = self.sealer.seal(location)?;
            }
        }
        for (key, value) in &mut def.options {
            if is_secret_key(key) || has_embedded_password(value) {
                *value = self.sealer.seal(value)?;
            }
        }
        Ok(def)
    }

    /// `def` with its secrets opened, to re-create the table.
    pub fn unsealed(&self, mut def: ExternalTableDef) -> Result<ExternalTableDef> {
        for location in &mut def.locations {
            *location = self.sealer.unseal(location)?;
        }
        for (_, value) in &mut def.options {
            *value = self.sealer.unseal(value)?;
        }
        Ok(def)
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&CatalogFile) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Applies `change` to a copy, persists the copy durably, then publishes it.
    /// If `change` fails or the write fails, nothing changes.
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&mut CatalogFile) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = guard.clone();
        let out = change(&mut next)?;
        next.format_version = FORMAT_VERSION;
        write_atomically(&self.path, &next)?;
        *guard = next;
        Ok(out)
    }

    /// The data dir this catalog lives in.
    pub fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Schemas the user created, in creation order.
    pub fn schemas(&self) -> Vec<String> {
        self.read(|c| c.schemas.clone())
    }

    /// Tables and views, in creation order.
    pub fn objects(&self) -> Vec<ObjectDef> {
        self.read(|c| c.objects.clone())
    }
}

fn write_atomically(path: &Path, file: &CatalogFile) -> Result<()> {
    write_json_atomically(path, file)
}

/// Writes `value` as JSON so that `path` holds either the old or the new content after
/// a crash: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Corrupt {
        path: path.display().to_string(),
        source,
    })?;
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(&bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    Ok(())
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_persists_and_failed_change_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogStore::open(dir.path()).unwrap();
        store
            .update(|c| {
                c.schemas.push("sales".into());
                Ok(())
            })
            .unwrap();
        let failed: Result<()> = store.update(|c| {
            c.schemas.push("lost".into());
            Err(Error::UserNotFound { name: "x".into() })
        });
        assert!(failed.is_err());
        assert_eq!(store.schemas(), vec!["sales".to_string()]);
        let reopened = CatalogStore::open(dir.path()).unwrap();
        assert_eq!(reopened.schemas(), vec!["sales".to_string()]);
        assert!(!dir.path().join("catalog.json.tmp").exists());
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = CatalogStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
