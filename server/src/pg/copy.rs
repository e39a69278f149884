//! `COPY t FROM STDIN` and `COPY (query) TO STDOUT` over pgwire (psql `\copy`,
//! psycopg `cursor.copy()`).
//!
//! COPY FROM streams: each CopyData message is decoded by arrow's push-based CSV
//! decoder as it arrives, and the record batches flow through a channel into the
//! table's own `insert_into` plan, so a managed table commits all rows at CopyDone or
//! none. Text format (tab-separated, `\N` for NULL, backslash escapes; see
//! [`super::copy_text`]) and CSV (with HEADER, DELIMITER, NULL, QUOTE) are understood.
//!
//! COPY TO STDOUT runs the query and sends one CopyData message per row, in text or
//! CSV format.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::csv::reader::{Decoder, ReaderBuilder};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::{Sink, SinkExt, StreamExt};
use parking_lot::Mutex;
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Tag};
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::copy_text::{TextRows, CSV_NULL};
use crate::engine::Engine;
use crate::error::{classify, to_pg_error};
use crate::monitor::Tracked;

/// How rows are written as text.
#[derive(Debug, Clone)]
pub(crate) struct CopyFormat {
    csv: bool,
    delimiter: u8,
    null: String,
    header: bool,
    quote: u8,
}

impl Default for CopyFormat {
    fn default() -> Self {
        Self {
            csv: false,
            delimiter: b'\t',
            null: "\\N".into(),
            header: false,
            quote: b'"',
        }
    }
}

/// A `COPY` over the client connection.
#[derive(Debug)]
pub(crate) enum CopyCommand {
    FromStdin {
        table: TableReference,
        columns: Vec<String>,
        format: CopyFormat,
    },
    ToStdout {
        query: String,
        format: CopyFormat,
    },
}

/// The `COPY ... FROM STDIN` / `TO STDOUT` in `sql`, if that is what it is.
pub(crate) fn parse(sql: &str) -> Option<Result<CopyCommand>> {
    let trimmed = sql.trim_start();
    if !trimmed
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
    {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let Some(Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    }) = statements.pop()
    else {
        return None;
    };
    if !matches!(target, CopyTarget::Stdin | CopyTarget::Stdout) {
        return None; // COPY ... TO 'file' is the catalog's
    }
    Some(
        format_of(&options, &legacy_options).map(|format| match (source, to) {
            (
                CopySource::Table {
                    table_name,
                    columns,
                },
                false,
            ) => CopyCommand::FromStdin {
                table: TableReference::from(table_name.to_string().as_str()),
                columns: columns.into_iter().map(|c| c.value).collect(),
                format,
            },
            (
                CopySource::Table {
                    table_name,
                    columns,
                },
                true,
            ) => {
                let columns = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                CopyCommand::ToStdout {
                    query: format!("SELECT {columns} FROM {table_name}"),
                    format,
                }
            }
            (CopySource::Query(query), _) => CopyCommand::ToStdout {
                query: query.to_string(),
                format,
            },
        }),
    )
}

fn format_of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat> {
    let mut f = CopyFormat::default();
    let byte = |c: char, what: &str| -> Result<u8> {
        u8::try_from(c as u32).map_err(|_| {
            DataFusionError::Plan(format!("COPY {what} must be a single-byte character"))
        })
    };
    for option in options {
        match option {
            CopyOption::Format(name) => match name.value.to_lowercase().as_str() {
                "csv" => f.csv = true,
                "text" => f.csv = false,
                other => {
                    return Err(DataFusionError::NotImplemented(format!(
                        "COPY FORMAT {other} is not supported; use text or csv"
                    )))
                }
            },
            CopyOption::Delimiter(c) => f.delimiter = byte(*c, "DELIMITER")?,
            CopyOption::Null(s) => f.null = s.clone(),
            CopyOption::Header(h) => f.header = *h,
            CopyOption::Quote(c) => f.quote = byte(*c, "QUOTE")?,
            _ => {}
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Csv(csv) => {
                f.csv = true;
                for o in csv {
                    match o {
                        CopyLegacyCsvOption::Header => f.header = true,
                        CopyLegacyCsvOption::Quote(c) => f.quote = byte(*c, "QUOTE")?,
                        _ => {}
                    }
                }
            }
            CopyLegacyOption::Header => f.header = true,
            CopyLegacyOption::Delimiter(c) => f.delimiter = byte(*c, "DELIMITER")?,
            CopyLegacyOption::Null(s) => f.null = s.clone(),
            CopyLegacyOption::Binary => {
                return Err(DataFusionError::NotImplemented(
                    "COPY BINARY is not supported; use text or csv".into(),
                ))
            }
            _ => {}
        }
    }
    if f.csv
        && !options
            .iter()
            .any(|o| matches!(o, CopyOption::Delimiter(_)))
        && !legacy
            .iter()
            .any(|o| matches!(o, CopyLegacyOption::Delimiter(_)))
    {
        f.delimiter = b',';
    }
    if f.csv
        && !options.iter().any(|o| matches!(o, CopyOption::Null(_)))
        && !legacy
            .iter()
            .any(|o| matches!(o, CopyLegacyOption::Null(_)))
    {
        f.null = String::new();
    }
    Ok(f)
}

/// A COPY FROM in progress on one connection.
struct CopyIn {
    decoder: Decoder,
    /// Columns the client sends, in the table's order afterwards.
    sent: SchemaRef,
    table: SchemaRef,
    rows: mpsc::Sender<Result<RecordBatch>>,
    insert: JoinHandle<Result<u64>>,
    /// Text format: rows are rewritten as CSV (and the `\.` end line dropped).
    text: Option<TextRows>,
    tracked: Tracked,
    /// The role's `max_file_bytes`, and the bytes received so far.
    max_bytes: Option<u64>,
    received: u64,
    user: String,
}

/// COPY FROM STDIN state of every connection, by backend pid.
#[derive(Default)]
pub(crate) struct CopyIns(Mutex<HashMap<i32, CopyIn>>);

impl CopyIns {
    /// Starts `COPY table FROM STDIN`: the insert plan runs while data arrives.
    pub(crate) async fn start(
        &self,
        engine: &Engine,
        pid: i32,
        table: TableReference,
        columns: Vec<String>,
        format: CopyFormat,
        tracked: Tracked,
    ) -> Result<CopyResponse> {
        let provider = engine.ctx().table_provider(table.clone()).await?;
        let table_schema = provider.schema();
        let sent = if columns.is_empty() {
            table_schema.clone()
        } else {
            let indices = columns
                .iter()
                .map(|c| table_schema.index_of(c).map_err(DataFusionError::from))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(table_schema.project(&indices)?)
        };
        let mut builder = ReaderBuilder::new(sent.clone()).with_header(format.header);
        builder = if format.csv {
            builder
                .with_delimiter(format.delimiter)
                .with_quote(format.quote)
        } else {
            // Text rows arrive rewritten as CSV (copy_text), NULL as a NUL byte.
            let null = regex::Regex::new(&format!("^{}$", regex::escape(CSV_NULL)))
                .map_err(|e| DataFusionError::Internal(e.to_string()))?;
            builder.with_quote(b'"').with_null_regex(null)
        };
        if format.csv && !format.null.is_empty() {
            let pattern = format!("^{}$", regex::escape(&format.null));
            let regex = regex::Regex::new(&pattern)
                .map_err(|e| DataFusionError::Plan(format!("COPY NULL '{}': {e}", format.null)))?;
            builder = builder.with_null_regex(regex);
        }
        let (tx, mut rx) = mpsc::channel::<Result<RecordBatch>>(4);
        let rows = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let rows = Box::pin(RecordBatchStreamAdapter::new(table_schema.clone(), rows));
        let engine = engine.clone();
        let caller = insightflow_catalog::access::current_caller()?;
        caller.check_table(insightflow_catalog::access::Privilege::Insert, &table)?;
        let max_bytes = caller.limits().max_file_bytes;
        let user = caller.name().to_string();
        let record = tracked.clone();
        let insert = tokio::spawn(caller.scope(async move {
            let written = engine.insert_stream(table, rows, InsertOp::Append).await;
            match &written {
                Ok(rows) => record.affected(*rows),
                Err(e) => {
                    let class = classify(e);
                    record.fail(class.sqlstate, &class.message);
                }
            }
            written
        }));
        let columns = sent.fields().len();
        self.0.lock().insert(
            pid,
            CopyIn {
                decoder: builder.build_decoder(),
                sent,
                table: table_schema,
                rows: tx,
                insert,
                text: (!format.csv).then(|| TextRows::new(format.delimiter, &format.null)),
                tracked,
                max_bytes,
                received: 0,
                user,
            },
        );
        Ok(CopyResponse::new(0, columns, futures::stream::empty()))
    }
}

/// Decodes `data` (or the end, when empty) and returns the batches now complete,
/// laid out like the table.
fn decode(copy: &mut CopyIn, mut data: &[u8], end: bool) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    loop {
        // An empty slice tells the decoder the input has ended: only at the end.
        if !data.is_empty() || end {
            let used = copy.decoder.decode(data)?;
            data = &data[used..];
        }
        if copy.decoder.capacity() == 0 || (end && data.is_empty()) {
            if let Some(batch) = copy.decoder.flush()? {
                out.push(to_table_layout(batch, &copy.sent, &copy.table)?);
            }
        }
        if data.is_empty() {
            return Ok(out);
        }
    }
}

/// Fills the columns the client did not send with NULLs.
fn to_table_layout(batch: RecordBatch, sent: &Schema, table: &SchemaRef) -> Result<RecordBatch> {
    if sent.fields().len() == table.fields().len() {
        return Ok(RecordBatch::try_new(
            table.clone(),
            batch.columns().to_vec(),
        )?);
    }
    let columns: Vec<ArrayRef> = table
        .fields()
        .iter()
        .map(|f| match sent.index_of(f.name()) {
            Ok(i) => batch.column(i).clone(),
            Err(_) => datafusion::arrow::array::new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(table.clone(), columns)?)
}

/// Receives COPY data for [`CopyIns`].
pub(crate) struct PgCopy {
    pub(crate) ins: Arc<CopyIns>,
}

fn pg_err(e: DataFusionError) -> PgWireError {
    to_pg_error(&e)
}

#[async_trait]
impl CopyHandler for PgCopy {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pid = client.pid_and_secret_key().0;
        let (batches, sender) = {
            let mut ins = self.ins.0.lock();
            let Some(copy) = ins.get_mut(&pid) else {
                return Ok(());
            };
            copy.received += data.data.len() as u64;
            if let Some(max) = copy.max_bytes.filter(|max| copy.received > *max) {
                let error = insightflow_catalog::RoleLimits::exceeded(
                    "max_file_bytes",
                    max,
                    &copy.user,
                    "the data sent to COPY",
                );
                // Failing the input fails the insert: nothing is committed.
                let _ = copy.rows.try_send(Err(error.into()));
                return Ok(());
            }
            let decoded = match copy.text.as_mut() {
                Some(text) => text
                    .feed(&data.data, false)
                    .and_then(|csv| decode(copy, &csv, false)),
                None => decode(copy, &data.data, false),
            };
            (decoded, copy.rows.clone())
        };
        match batches {
            Ok(batches) => {
                for batch in batches {
                    // The insert ended early (an error): CopyDone reports it.
                    if sender.send(Ok(batch)).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                let _ = sender.send(Err(e)).await;
            }
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pid = client.pid_and_secret_key().0;
        let Some(mut copy) = self.ins.0.lock().remove(&pid) else {
            return Err(PgWireError::UserError(Box::new(
                pgwire::error::ErrorInfo::new(
                    "ERROR".into(),
                    "08P01".into(),
                    "CopyDone without a COPY FROM STDIN in progress".into(),
                ),
            )));
        };
        let last = match copy.text.as_mut().map(|text| text.feed(&[], true)) {
            Some(Ok(csv)) => decode(&mut copy, &csv, false).and_then(|mut batches| {
                batches.extend(decode(&mut copy, &[], true)?);
                Ok(batches)
            }),
            Some(Err(e)) => Err(e),
            None => decode(&mut copy, &[], true),
        };
        let sender = copy.rows.clone();
        match last {
            Ok(batches) => {
                for batch in batches {
                    let _ = sender.send(Ok(batch)).await;
                }
            }
            Err(e) => {
                let _ = sender.send(Err(e)).await;
            }
        }
        drop(sender);
        drop(copy.rows);
        let rows = copy
            .insert
            .await
            .map_err(|e| pg_err(DataFusionError::External(Box::new(e))))?
            .map_err(pg_err)?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(rows as usize).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pid = client.pid_and_secret_key().0;
        if let Some(copy) = self.ins.0.lock().remove(&pid) {
            // Failing the input stream fails the insert: nothing is committed.
            let _ = copy
                .rows
                .try_send(Err(DataFusionError::Execution("COPY aborted".into())));
            copy.tracked.fail(
                "57014",
                &format!("COPY from stdin failed: {}", fail.message),
            );
            copy.insert.abort();
        }
        PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}

/// `COPY (query) TO STDOUT`: one CopyData message per row.
pub(crate) async fn copy_out(
    engine: &Engine,
    query: &str,
    format: CopyFormat,
) -> Result<CopyResponse> {
    let df = engine.query(query).await?;
    let schema = df.schema().as_arrow().clone();
    let columns = schema.fields().len();
    // The header goes in the first message, so the COPY count is the row count.
    let mut header = format.header.then(|| {
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| quote_csv(f.name(), &format))
            .collect();
        format!("{}\n", names.join(&(format.delimiter as char).to_string()))
    });
    let stream = df.execute_stream().await?;
    let rows = stream.flat_map(move |batch| {
        let lines = match batch {
            Ok(batch) => encode_rows(&batch, &format).map_err(pg_err),
            Err(e) => Err(pg_err(e)),
        };
        let items: Vec<PgWireResult<CopyData>> = match lines {
            Ok(mut lines) => {
                if let (Some(first), Some(h)) = (lines.first_mut(), header.as_ref()) {
                    first.insert_str(0, h);
                    header = None;
                }
                lines
                    .into_iter()
                    .map(|l| Ok(CopyData::new(l.into_bytes().into())))
                    .collect()
            }
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(items)
    });
    Ok(CopyResponse::new(0, columns, rows))
}

fn encode_rows(batch: &RecordBatch, format: &CopyFormat) -> Result<Vec<String>> {
    let texts = batch
        .columns()
        .iter()
        .map(|c| cast(c, &DataType::Utf8))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let delimiter = (format.delimiter as char).to_string();
    Ok((0..batch.num_rows())
        .map(|r| {
            let mut line = texts
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    if c.is_null(r) {
                        format.null.clone()
                    } else if format.csv {
                        quote_csv(c.value(r), format)
                    } else {
                        escape_text(c.value(r))
                    }
                })
                .collect::<Vec<_>>()
                .join(&delimiter);
            line.push('\n');
            line
        })
        .collect())
}

fn quote_csv(value: &str, format: &CopyFormat) -> String {
    let quote = format.quote as char;
    let needs = value.is_empty() && format.null.is_empty()
        || value.contains([format.delimiter as char, quote, '\n', '\r']);
    if needs {
        format!(
            "{quote}{}{quote}",
            value.replace(quote, &format!("{quote}{quote}"))
        )
    } else {
        value.to_string()
    }
}

fn escape_text(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
