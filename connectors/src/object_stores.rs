//! Files in object stores: `s3://`, `gs://`, `az://` (also `abfs(s)://`) and `http(s)://`
//! locations for every file format (CSV, JSON, Parquet, Avro, Arrow).
//!
//! ```sql
//! CREATE EXTERNAL TABLE trips STORED AS PARQUET LOCATION 's3://lake/trips/'
//!   OPTIONS ('aws.region' 'eu-west-1', 'aws.access_key_id' '...',
//!            'aws.secret_access_key' '...', 'aws.endpoint' 'http://127.0.0.1:9000');
//! ```
//!
//! DataFusion reads any URL whose store is registered in the session's runtime; this
//! module builds that store from the table's OPTIONS (`aws.*`, `gcp.*`, `azure.*`, with
//! the keys `object_store` documents for each builder) on top of the usual environment
//! variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), registers it, and hands the remaining
//! options to DataFusion's own listing-table factory. The table is re-created the same
//! way at start-up, so the store is registered again from the (sealed) options.
//!
//! Stores are keyed by scheme and bucket, as DataFusion's registry is: two tables in
//! one bucket share the store registered last.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::CreateExternalTable;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{ClientOptions, ObjectStore};
use url::Url;

/// The option prefixes that configure a store rather than a file format.
const STORE_PREFIXES: [&str; 3] = ["aws.", "gcp.", "azure."];

/// Wraps a file-format factory (DataFusion's `ListingTableFactory`) so that remote
/// locations get their object store first.
#[derive(Debug)]
pub struct ObjectStoreTableFactory {
    pub inner: Arc<dyn TableProviderFactory>,
}

#[async_trait]
impl TableProviderFactory for ObjectStoreTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let (store_options, format_options): (HashMap<_, _>, HashMap<_, _>) = cmd
            .options
            .clone()
            .into_iter()
            .partition(|(k, _)| STORE_PREFIXES.iter().any(|p| k.starts_with(p)));
        let mut remote = false;
        for location in &cmd.locations {
            if let Some(url) = remote_url(location)? {
                let store = build_store(&url, &store_options)?;
                state.runtime_env().register_object_store(&url, store);
                remote = true;
            }
        }
        if !remote && !store_options.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "options {} configure an object store, but the LOCATION is a local path",
                sorted_keys(&store_options)
            )));
        }
        let mut cmd = cmd.clone();
        cmd.options = format_options;
        self.inner.create(state, &cmd).await
    }
}

/// The URL of a location in an object store, or `None` for a local path.
fn remote_url(location: &str) -> Result<Option<Url>> {
    let Some((scheme, _)) = location.split_once("://") else {
        return Ok(None);
    };
    if scheme.eq_ignore_ascii_case("file") {
        return Ok(None);
    }
    let url = Url::parse(location)
        .map_err(|e| DataFusionError::Plan(format!("LOCATION '{location}' is not a URL: {e}")))?;
    Ok(Some(url))
}

/// Builds the store for `url` from the environment and the table's store options.
pub fn build_store(url: &Url, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let scheme = url.scheme().to_ascii_lowercase();
    let wrong_prefix = |prefix: &str| {
        options
            .keys()
            .find(|k| !k.starts_with(prefix))
            .map(|k| {
                DataFusionError::Plan(format!(
                    "option '{k}' does not apply to a {scheme}:// location (use {prefix}* options)"
                ))
            })
            .map_or(Ok(()), Err)
    };
    let store: Arc<dyn ObjectStore> = match scheme.as_str() {
        "s3" | "s3a" => {
            wrong_prefix("aws.")?;
            let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
            for (key, value) in options {
                let name = &key["aws.".len()..];
                let config: AmazonS3ConfigKey = name
                    .parse()
                    .or_else(|_| format!("aws_{name}").parse())
                    .map_err(|_| unknown_option(key, "AmazonS3ConfigKey"))?;
                builder = builder.with_config(config, value);
            }
            // A local S3-compatible server (MinIO, moto) is usually plain HTTP.
            let endpoint = options.get("aws.endpoint").or(options.get("aws.endpoint_url"));
            if endpoint.is_some_and(|e| e.starts_with("http://")) {
                builder = builder.with_allow_http(true);
            }
            Arc::new(builder.build().map_err(store_error)?)
        }
        "gs" | "gcs" => {
            wrong_prefix("gcp.")?;
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (key, value) in options {
                let config: GoogleConfigKey = key["gcp.".len()..]
                    .parse()
                    .map_err(|_| unknown_option(key, "GoogleConfigKey"))?;
                builder = builder.with_config(config, value);
            }
            Arc::new(builder.build().map_err(store_error)?)
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            wrong_prefix("azure.")?;
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (key, value) in options {
                let config: AzureConfigKey = key["azure.".len()..]
                    .parse()
                    .map_err(|_| unknown_option(key, "AzureConfigKey"))?;
                builder = builder.with_config(config, value);
            }
            Arc::new(builder.build().map_err(store_error)?)
        }
        "http" | "https" => {
            if let Some(key) = options.keys().next() {
                return Err(DataFusionError::Plan(format!(
                    "option '{key}' does not apply to an {scheme}:// location"
                )));
            }
            let origin = &url[..url::Position::BeforePath];
            let client = ClientOptions::new().with_allow_http(scheme == "http");
            Arc::new(
                HttpBuilder::new()
                    .with_url(origin)
                    .with_client_options(client)
                    .build()
                    .map_err(store_error)?,
            )
        }
        other => {
            return Err(DataFusionError::Plan(format!(
                "no object store for {other}:// locations; use s3://, gs://, az://, http(s):// or a local path"
            )))
        }
    };
    Ok(store)
}

fn unknown_option(key: &str, builder_keys: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "unknown object-store option '{key}' (see object_store's {builder_keys} for the names)"
    ))
}

fn store_error(e: object_store::Error) -> DataFusionError {
    DataFusionError::Plan(format!("cannot configure the object store: {e}"))
}

fn sorted_keys(options: &HashMap<String, String>) -> String {
    let mut keys: Vec<&str> = options.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn s3_takes_aws_options_and_refuses_unknown_ones() {
        let url = Url::parse("s3://bucket/data/").unwrap();
        let ok = opts(&[
            ("aws.region", "us-east-1"),
            ("aws.access_key_id", "id"),
            ("aws.secret_access_key", "secret"),
            ("aws.endpoint", "http://127.0.0.1:9"),
            ("aws.allow_http", "true"),
        ]);
        build_store(&url, &ok).unwrap();
        let err = build_store(&url, &opts(&[("aws.colour", "red")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown object-store option 'aws.colour'"),
            "{err}"
        );
        let err = build_store(&url, &opts(&[("gcp.bucket", "x")])).unwrap_err();
        assert!(err.to_string().contains("use aws.* options"), "{err}");
    }

    #[test]
    fn gcs_and_azure_take_their_own_options() {
        // A GCS emulator: base URL and no OAuth in the service-account JSON.
        let key = r#"{"gcs_base_url": "http://127.0.0.1:4443", "disable_oauth": true,
                      "client_email": "", "private_key": "", "private_key_id": ""}"#;
        let gcs = opts(&[("gcp.service_account_key", key), ("gcp.allow_http", "true")]);
        build_store(&Url::parse("gs://bucket/data/").unwrap(), &gcs).unwrap();
        let err = build_store(
            &Url::parse("gs://bucket/x").unwrap(),
            &opts(&[("gcp.colour", "red")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GoogleConfigKey"), "{err}");

        let azure = opts(&[
            ("azure.account_name", "acme"),
            ("azure.access_key", "a2V5"),
            ("azure.endpoint", "http://127.0.0.1:10000/acme"),
            ("azure.allow_http", "true"),
        ]);
        build_store(&Url::parse("az://container/data/").unwrap(), &azure).unwrap();
        let err = build_store(
            &Url::parse("az://c/x").unwrap(),
            &opts(&[("aws.region", "x")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("use azure.* options"), "{err}");
    }

    #[test]
    fn schemes_without_a_store_are_refused() {
        let err =
            build_store(&Url::parse("ftp://host/f.csv").unwrap(), &HashMap::new()).unwrap_err();
        assert!(
            err.to_string().contains("no object store for ftp://"),
            "{err}"
        );
        assert!(remote_url("/data/f.csv").unwrap().is_none());
        assert!(remote_url("file:///data/f.csv").unwrap().is_none());
        assert!(remote_url("s3://b/k").unwrap().is_some());
    }
}
