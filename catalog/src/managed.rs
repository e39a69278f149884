//! Managed tables: `CREATE TABLE`, `INSERT`, `TRUNCATE` and `DROP`, stored as Parquet
//! files under `<data-dir>/tables/<dir>/` and listed by a manifest.
//!
//! A write streams its rows into a new Parquet file (fsynced), then commits by
//! replacing `manifest.json` atomically (temp file, fsync, rename, fsync of the
//! directory). Readers take the manifest in memory at plan time, so they see one
//! consistent snapshot while writes go on; a write that was killed before its commit
//! left only a file no manifest lists, which is deleted at the next start. Files that
//! a commit replaces (by `TRUNCATE`, `INSERT OVERWRITE` or compaction) are retired, not
//! deleted, because a running scan may still read them; they go at the next start.
//!
//! Many small `INSERT`s would make many small files: once a table has more than
//! [`COMPACT_AT`] files, the small ones are rewritten into one.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;

use crate::store::{io_err, write_json_atomically, ManagedTableDef};

/// More files than this and the small ones are compacted into one.
pub const COMPACT_AT: usize = 16;
/// Files with fewer rows than this count as small.
const SMALL_FILE_ROWS: u64 = 1_000_000;
const MANIFEST: &str = "manifest.json";

/// The committed state of a table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u64,
    files: Vec<DataFile>,
    /// Replaced files a running scan may still read; deleted at the next open.
    #[serde(default)]
    retired: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DataFile {
    name: String,
    rows: u64,
}

/// A managed table, registered in DataFusion as a `TableProvider`.
#[derive(Debug, Clone)]
pub struct ManagedTable(Arc<TableFiles>);

/// The files of a table and its commit protocol.
struct TableFiles {
    dir: PathBuf,
    schema: SchemaRef,
    /// The committed manifest; readers clone it, commits replace it.
    manifest: parking_lot::RwLock<Manifest>,
    /// One commit at a time.
    commit: AsyncMutex<()>,
}

impl fmt::Debug for TableFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableFiles")
            .field("dir", &self.dir)
            .finish()
    }
}

/// The directory that holds every managed table of a data dir.
pub fn tables_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tables")
}

impl ManagedTable {
    /// Creates the directory and an empty manifest for a new table.
    pub fn create(dir: PathBuf, schema: SchemaRef) -> crate::Result<Self> {
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let manifest = Manifest::default();
        write_json_atomically(&dir.join(MANIFEST), &manifest)?;
        Ok(Self::new(dir, schema, manifest))
    }

    fn new(dir: PathBuf, schema: SchemaRef, manifest: Manifest) -> Self {
        Self(Arc::new(TableFiles {
            dir,
            schema,
            manifest: parking_lot::RwLock::new(manifest),
            commit: AsyncMutex::new(()),
        }))
    }

    /// Opens a table at start-up, removing files no manifest lists and retired files.
    pub fn open(dir: PathBuf, schema: SchemaRef) -> crate::Result<Self> {
        let path = dir.join(MANIFEST);
        let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
        let mut manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| crate::Error::Corrupt {
                path: path.display().to_string(),
                source,
            })?;
        if !manifest.retired.is_empty() {
            manifest.retired.clear();
            write_json_atomically(&path, &manifest)?;
        }
        let live: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        for entry in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name != MANIFEST && !live.contains(&name.as_str()) {
                tracing::info!(file = %entry.path().display(), "removing a file no commit lists");
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self::new(dir, schema, manifest))
    }

    /// Rows in committed files.
    pub fn row_count(&self) -> u64 {
        self.0.manifest.read().files.iter().map(|f| f.rows).sum()
    }

    /// Appends (or with `overwrite`, replaces the rows with) `data`; returns the rows
    /// written. The rows are visible, and durable, when this returns.
    pub async fn write(
        &self,
        data: SendableRecordBatchStream,
        overwrite: bool,
        ctx: &Arc<TaskContext>,
    ) -> Result<u64> {
        self.0.write(data, overwrite, ctx).await
    }
}

impl TableFiles {
    /// Streams `data` into a new Parquet file; returns its name and row count.
    async fn write_file(&self, mut data: SendableRecordBatchStream) -> Result<Option<DataFile>> {
        let name = format!("{}.parquet", uuid::Uuid::new_v4());
        let path = self.dir.join(&name);
        let file = File::create(&path)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut writer = ArrowWriter::try_new(file, self.schema.clone(), Some(props))?;
        let mut rows = 0u64;
        let result: Result<()> = async {
            while let Some(batch) = data.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                // Same columns, the table's field names and nullability.
                let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
                    self.schema.clone(),
                    batch.columns().to_vec(),
                )?;
                writer.write(&batch)?;
            }
            let file = writer.into_inner()?;
            file.sync_all()?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        if rows == 0 {
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(DataFile { name, rows }))
    }

    /// Commits a new manifest: `added` files in, `replaced` files retired.
    async fn commit(&self, added: Vec<DataFile>, replaced: Replace) -> Result<()> {
        let _guard = self.commit.lock().await;
        let mut next = self.manifest.read().clone();
        next.version += 1;
        let retire: Vec<String> = match &replaced {
            Replace::Nothing => vec![],
            Replace::All => next.files.iter().map(|f| f.name.clone()).collect(),
            Replace::These(names) => names.clone(),
        };
        next.files.retain(|f| !retire.contains(&f.name));
        next.retired.extend(retire);
        next.files.extend(added);
        write_json_atomically(&self.dir.join(MANIFEST), &next)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        *self.manifest.write() = next;
        Ok(())
    }

    async fn write(
        &self,
        data: SendableRecordBatchStream,
        overwrite: bool,
        ctx: &Arc<TaskContext>,
    ) -> Result<u64> {
        let file = self.write_file(data).await?;
        let rows = file.as_ref().map_or(0, |f| f.rows);
        let replace = if overwrite {
            Replace::All
        } else {
            Replace::Nothing
        };
        if file.is_some() || overwrite {
            self.commit(file.into_iter().collect(), replace).await?;
        }
        self.compact_if_needed(ctx).await?;
        Ok(rows)
    }

    /// Rewrites the small files into one when there are too many files.
    async fn compact_if_needed(&self, ctx: &Arc<TaskContext>) -> Result<()> {
        let small: Vec<DataFile> = {
            let manifest = self.manifest.read();
            if manifest.files.len() <= COMPACT_AT {
                return Ok(());
            }
            manifest
                .files
                .iter()
                .filter(|f| f.rows < SMALL_FILE_ROWS)
                .cloned()
                .collect()
        };
        if small.len() < 2 {
            return Ok(());
        }
        let scan = self.listing(&small)?.scan_with_task_ctx(ctx).await?;
        let stream = datafusion::physical_plan::execute_stream(scan, ctx.clone())?;
        let merged = self.write_file(stream).await?;
        let names = small.iter().map(|f| f.name.clone()).collect();
        self.commit(merged.into_iter().collect(), Replace::These(names))
            .await?;
        tracing::debug!(dir = %self.dir.display(), files = small.len(), "compacted");
        Ok(())
    }

    /// A listing table over exactly `files`.
    fn listing(&self, files: &[DataFile]) -> Result<ListingScan> {
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(self.dir.join(&f.name).to_string_lossy()))
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(self.schema.clone());
        Ok(ListingScan(ListingTable::try_new(config)?))
    }
}

enum Replace {
    Nothing,
    All,
    These(Vec<String>),
}

/// A listing table, also scannable outside a query (for compaction).
struct ListingScan(ListingTable);

impl ListingScan {
    async fn scan_with_task_ctx(&self, ctx: &Arc<TaskContext>) -> Result<Arc<dyn ExecutionPlan>> {
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(ctx.session_config().clone())
            .with_runtime_env(ctx.runtime_env())
            .with_default_features()
            .build();
        self.0.scan(&state, None, &[], None).await
    }
}

#[async_trait]
impl TableProvider for ManagedTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The snapshot this query reads: files committed now.
        let files = self.0.manifest.read().files.clone();
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.0.schema.project(p)?),
                None => self.0.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        self.0
            .listing(&files)?
            .0
            .scan(state, projection, filters, limit)
            .await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let overwrite = match insert_op {
            InsertOp::Append => false,
            InsertOp::Overwrite => true,
            InsertOp::Replace => {
                return Err(DataFusionError::NotImplemented(
                    "REPLACE INTO is not supported on managed tables; use INSERT".into(),
                ))
            }
        };
        let sink = ManagedSink {
            table: self.clone(),
            overwrite,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    /// Commits an empty table when the plan runs (not when it is planned).
    async fn truncate(&self, _state: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        let sink = ManagedSink {
            table: self.clone(),
            overwrite: true,
        };
        let empty = Arc::new(EmptyExec::new(self.0.schema.clone()));
        Ok(Arc::new(DataSinkExec::new(empty, Arc::new(sink), None)))
    }
}

/// Where `INSERT` rows go: one new file, then a commit.
#[derive(Debug)]
struct ManagedSink {
    table: ManagedTable,
    overwrite: bool,
}

impl DisplayAs for ManagedSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ManagedSink: dir={}, overwrite={}",
            self.table.0.dir.display(),
            self.overwrite
        )
    }
}

#[async_trait]
impl DataSink for ManagedSink {
    fn schema(&self) -> &SchemaRef {
        &self.table.0.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        self.table.write(data, self.overwrite, context).await
    }
}

/// The Arrow schema of a recorded definition.
pub fn schema_of(def: &ManagedTableDef) -> crate::Result<SchemaRef> {
    let fields = def
        .columns
        .iter()
        .map(|(name, t, nullable)| {
            t.parse::<DataType>()
                .map(|t| Field::new(name, t, *nullable))
                .map_err(|e| crate::Error::BadDefinition {
                    name: format!("{}.{}", def.schema, def.name),
                    reason: format!("column {name} has type {t}: {e}"),
                })
        })
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The recorded columns of `schema`.
pub fn columns_of(schema: &Schema) -> Vec<(String, String, bool)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string(), f.is_nullable()))
        .collect()
}
