//! `STORED AS HTTP`: the records of a JSON API as a table, fetched again by each query.
//!
//! ```sql
//! CREATE EXTERNAL TABLE tickets STORED AS HTTP
//!   LOCATION 'https://api.example.com/v1/tickets?state=open'
//!   OPTIONS ('json_path' 'data.items',               -- where the records are
//!            'header.authorization' 'Bearer ...',    -- any request header
//!            'pagination' 'page',                    -- page | offset | cursor | none
//!            'page_size' '100', 'max_pages' '100');
//! ```
//!
//! Pagination: `page` sends `page=1,2,...` (`page_param`) with `per_page` (`size_param`);
//! `offset` sends `offset=0,N,2N,...` (`offset_param`) with `limit` (`size_param`); both
//! stop at a short page. `cursor` sends the value found at `cursor_path` in each answer
//! as `cursor` (`cursor_param`) until it is missing or empty. `max_pages` bounds every
//! mode. The schema is inferred from the first answer's records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{CreateExternalTable, Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use serde_json::Value;

#[derive(Debug)]
pub struct HttpTableFactory;

#[async_trait]
impl TableProviderFactory for HttpTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let [url] = cmd.locations.as_slice() else {
            return Err(DataFusionError::Plan(
                "STORED AS HTTP needs one LOCATION: the API's URL".into(),
            ));
        };
        let api = Api::new(url, &cmd.options)?;
        let records = api.fetch_all().await?;
        if records.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "{url} returned no records at '{}' to infer a schema from",
                api.json_path
            )));
        }
        let schema = infer_json_schema_from_iterator(records.iter().map(|r| Ok(r.clone())))?;
        Ok(Arc::new(HttpTable {
            api,
            schema: Arc::new(schema),
        }))
    }
}

/// How to call one API.
#[derive(Debug, Clone)]
struct Api {
    url: reqwest::Url,
    headers: Vec<(String, String)>,
    json_path: String,
    paging: Paging,
    max_pages: usize,
}

#[derive(Debug, Clone)]
enum Paging {
    None,
    Page {
        param: String,
        size_param: String,
        size: usize,
    },
    Offset {
        param: String,
        size_param: String,
        size: usize,
    },
    Cursor {
        param: String,
        path: String,
    },
}

impl Api {
    fn new(url: &str, options: &HashMap<String, String>) -> Result<Self> {
        let plan = |m: String| DataFusionError::Plan(m);
        let url = reqwest::Url::parse(url)
            .map_err(|e| plan(format!("LOCATION '{url}' is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(plan(format!(
                "STORED AS HTTP reads http(s) URLs, not {}",
                url.scheme()
            )));
        }
        let option = |k: &str| {
            options
                .get(k)
                .or_else(|| options.get(&format!("format.{k}")))
        };
        let text = |k: &str, default: &str| option(k).cloned().unwrap_or_else(|| default.into());
        let number = |k: &str, default: usize| -> Result<usize> {
            match option(k) {
                Some(v) => v
                    .parse()
                    .map_err(|_| plan(format!("OPTIONS '{k}' must be a number, got '{v}'"))),
                None => Ok(default),
            }
        };
        let size = number("page_size", 100)?;
        let paging = match text("pagination", "none").to_lowercase().as_str() {
            "none" => Paging::None,
            "page" => Paging::Page {
                param: text("page_param", "page"),
                size_param: text("size_param", "per_page"),
                size,
            },
            "offset" => Paging::Offset {
                param: text("offset_param", "offset"),
                size_param: text("size_param", "limit"),
                size,
            },
            "cursor" => Paging::Cursor {
                param: text("cursor_param", "cursor"),
                path: option("cursor_path").cloned().ok_or_else(|| {
                    plan("pagination 'cursor' needs OPTIONS 'cursor_path' (where the next cursor is)".into())
                })?,
            },
            other => {
                return Err(plan(format!(
                    "pagination '{other}' is not one of page, offset, cursor, none"
                )))
            }
        };
        let headers = options
            .iter()
            .filter_map(|(k, v)| {
                let k = k.strip_prefix("format.").unwrap_or(k);
                k.strip_prefix("header.")
                    .map(|h| (h.to_string(), v.clone()))
            })
            .collect();
        Ok(Self {
            url,
            headers,
            json_path: text("json_path", ""),
            paging,
            max_pages: number("max_pages", 100)?,
        })
    }

    /// Every record, page after page.
    async fn fetch_all(&self) -> Result<Vec<Value>> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0..self.max_pages {
            let mut url = self.url.clone();
            {
                let mut query = url.query_pairs_mut();
                match &self.paging {
                    Paging::None => {}
                    Paging::Page {
                        param,
                        size_param,
                        size,
                    } => {
                        query.append_pair(param, &(page + 1).to_string());
                        query.append_pair(size_param, &size.to_string());
                    }
                    Paging::Offset {
                        param,
                        size_param,
                        size,
                    } => {
                        query.append_pair(param, &(page * size).to_string());
                        query.append_pair(size_param, &size.to_string());
                    }
                    Paging::Cursor { param, .. } => {
                        if let Some(c) = &cursor {
                            query.append_pair(param, c);
                        }
                    }
                }
            }
            let body = self.get(&client, url).await?;
            let found = match at_path(&body, &self.json_path) {
                Some(Value::Array(items)) => items.clone(),
                Some(Value::Object(_)) => {
                    vec![at_path(&body, &self.json_path).cloned().unwrap_or_default()]
                }
                _ => {
                    return Err(DataFusionError::Execution(format!(
                        "{}: no array of records at json_path '{}'",
                        self.url, self.json_path
                    )))
                }
            };
            let count = found.len();
            records.extend(found);
            match &self.paging {
                Paging::None => break,
                Paging::Page { size, .. } | Paging::Offset { size, .. } if count < *size => break,
                Paging::Cursor { path, .. } => match at_path(&body, path) {
                    Some(Value::String(next)) if !next.is_empty() => cursor = Some(next.clone()),
                    Some(Value::Number(next)) => cursor = Some(next.to_string()),
                    _ => break,
                },
                _ => {}
            }
        }
        Ok(records)
    }

    async fn get(&self, client: &reqwest::Client, url: reqwest::Url) -> Result<Value> {
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let mut request = client.get(url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let fail = |what: String| DataFusionError::Execution(format!("HTTP table {shown}: {what}"));
        let response = request
            .send()
            .await
            .map_err(|e| fail(format!("no answer: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("the API answered {status}")));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| fail(format!("the answer is not JSON: {e}")))
    }
}

/// The value at a dotted path (`data.items`); the empty path is the whole value.
fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(value, |v, key| v.get(key))
}

#[derive(Debug)]
struct HttpTable {
    api: Api,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for HttpTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let records = self.api.fetch_all().await?;
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .with_batch_size(records.len().max(1))
            .build_decoder()?;
        decoder.serialize(&records)?;
        let batch: RecordBatch = decoder
            .flush()?
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::at_path;
    use serde_json::json;

    #[test]
    fn dotted_paths() {
        let v = json!({"data": {"items": [1, 2]}, "next": "abc"});
        assert_eq!(at_path(&v, "data.items"), Some(&json!([1, 2])));
        assert_eq!(at_path(&v, ""), Some(&v));
        assert_eq!(at_path(&v, "data.missing"), None);
    }
}
