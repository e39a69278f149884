//! Command line, environment and TOML configuration.
//!
//! Every flag has an env twin (`--pg-addr` / `INSIGHTFLOW_PG_ADDR`) and a key in the
//! TOML file (`pg_addr`). Precedence: flag, then env, then file, then default. All of it
//! is validated here, at start-up, so a typo fails fast with a message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use insightflow_functions::ask::LlmConfig;
use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./insightflow-data";
pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";
pub const DEFAULT_FLIGHT_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_LLM_MODEL: &str = "gpt-4o-mini";

#[derive(Debug, Parser)]
#[command(
    name = "insightflow",
    version,
    about = "An analytics database server on Apache DataFusion"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Postgres wire protocol, Arrow Flight SQL and HTTP.
    Serve(Box<ServeArgs>),
    /// Run SQL against a data dir without a server.
    Sql(SqlArgs),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "INSIGHTFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the catalog and files live [default: ./insightflow-data].
    #[arg(long, env = "INSIGHTFLOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Postgres wire protocol address; port 0 picks a free port [default: 127.0.0.1:5433].
    #[arg(long, env = "INSIGHTFLOW_PG_ADDR")]
    pub pg_addr: Option<String>,
    /// Arrow Flight SQL address [default: 127.0.0.1:50051].
    #[arg(long, env = "INSIGHTFLOW_FLIGHT_ADDR")]
    pub flight_addr: Option<String>,
    /// HTTP address for /health [default: 127.0.0.1:8080].
    #[arg(long, env = "INSIGHTFLOW_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// PEM certificate chain; enables TLS on pgwire and Flight with --tls-key.
    #[arg(long, env = "INSIGHTFLOW_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "INSIGHTFLOW_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Refuse pg connections without TLS from other machines (FATAL 28000); needs
    /// --tls-cert. Flight is all TLS once a certificate is configured.
    #[arg(long, env = "INSIGHTFLOW_REQUIRE_TLS", num_args = 0..=1, default_missing_value = "true")]
    pub require_tls: Option<bool>,
    /// Roots under which local files may be read or written (repeatable)
    /// [default: <data-dir>/files].
    #[arg(
        long = "allow-path",
        env = "INSIGHTFLOW_ALLOW_PATH",
        value_delimiter = ','
    )]
    pub allow_path: Vec<PathBuf>,
    /// Load the demo data set (sales, customers, products) at start.
    #[arg(long, env = "INSIGHTFLOW_DEMO", num_args = 0..=1, default_missing_value = "true")]
    pub demo: Option<bool>,
    /// OpenAI-compatible endpoint for ask(), ending in /v1; without it the offline
    /// translator answers. The key comes from INSIGHTFLOW_LLM_API_KEY or OPENAI_API_KEY.
    #[arg(long, env = "INSIGHTFLOW_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Model name sent to the endpoint [default: gpt-4o-mini].
    #[arg(long, env = "INSIGHTFLOW_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Seconds to wait for the model, retries included [default: 30].
    #[arg(long, env = "INSIGHTFLOW_LLM_TIMEOUT_SECS")]
    pub llm_timeout_secs: Option<u64>,
    /// Memory all running queries may hold together, like 4GiB, 512MiB or 50%
    /// (of this machine's memory); 0 for no limit [default: 50%].
    #[arg(long, env = "INSIGHTFLOW_MEMORY_LIMIT")]
    pub memory_limit: Option<String>,
    /// Seconds a statement may run before it is cancelled (SQLSTATE 57014); a
    /// session's SET statement_timeout overrides it; 0 for none [default: 0].
    #[arg(long, env = "INSIGHTFLOW_STATEMENT_TIMEOUT_SECS")]
    pub statement_timeout_secs: Option<u64>,
    /// Open pg connections allowed at once; more get SQLSTATE 53300 [default: 100].
    #[arg(long, env = "INSIGHTFLOW_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Statements per second each user may start, both protocols together; more get
    /// SQLSTATE 53400 with the time to wait; 0 for no limit [default: 0].
    #[arg(long, env = "INSIGHTFLOW_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Where the catalog and files live [default: ./insightflow-data].
    #[arg(long, env = "INSIGHTFLOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Roots under which local files may be read or written.
    #[arg(
        long = "allow-path",
        env = "INSIGHTFLOW_ALLOW_PATH",
        value_delimiter = ','
    )]
    pub allow_path: Vec<PathBuf>,
    /// Read the SQL from this file.
    #[arg(short = 'f', long = "file", conflicts_with = "sql")]
    pub file: Option<PathBuf>,
    /// The SQL to run (one or more statements).
    pub sql: Option<String>,
}

/// The TOML file; every key is optional and unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub pg_addr: Option<String>,
    pub flight_addr: Option<String>,
    pub http_addr: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub require_tls: Option<bool>,
    pub allow_path: Option<Vec<PathBuf>>,
    pub demo: Option<bool>,
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
    pub llm_timeout_secs: Option<u64>,
    pub memory_limit: Option<String>,
    pub statement_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub rate_limit: Option<u32>,
    /// Passed to DataFusion's `ConfigOptions::set`, e.g. `execution.batch_size = 8192`.
    #[serde(default)]
    pub datafusion: HashMap<String, toml::Value>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// The configuration `serve` runs with, after precedence and validation.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub pg_addr: SocketAddr,
    pub flight_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub require_tls: bool,
    pub allow_paths: Vec<PathBuf>,
    pub demo: bool,
    pub datafusion: HashMap<String, String>,
    /// The model behind ask(); `None`: the offline translator.
    pub llm: Option<LlmConfig>,
    /// Bytes of memory for all queries together; `None`: no limit.
    pub memory_limit: Option<usize>,
    pub statement_timeout: Option<Duration>,
    pub max_connections: usize,
    pub rate_limit: u32,
}

impl ServeConfig {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let addr = |flag: Option<String>, file: Option<String>, default: &str, name: &str| {
            let text = flag.or(file).unwrap_or_else(|| default.to_string());
            text.parse::<SocketAddr>()
                .with_context(|| format!("{name} '{text}' is not an address like 127.0.0.1:5433"))
        };
        let tls_cert = args.tls_cert.or(file.tls_cert);
        let tls_key = args.tls_key.or(file.tls_key);
        let tls = match (tls_cert, tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("TLS needs both --tls-cert and --tls-key"),
        };
        let require_tls = args.require_tls.or(file.require_tls).unwrap_or(false);
        if require_tls && tls.is_none() {
            bail!("--require-tls needs a certificate: give --tls-cert and --tls-key");
        }
        let datafusion = file
            .datafusion
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect();
        let memory_limit = match args.memory_limit.or(file.memory_limit) {
            Some(text) => parse_memory_limit(&text)?,
            None => parse_memory_limit("50%")?,
        };
        Ok(Self {
            require_tls,
            memory_limit,
            statement_timeout: args
                .statement_timeout_secs
                .or(file.statement_timeout_secs)
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(100)
                .max(1),
            rate_limit: args.rate_limit.or(file.rate_limit).unwrap_or(0),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            pg_addr: addr(args.pg_addr, file.pg_addr, DEFAULT_PG_ADDR, "pg_addr")?,
            flight_addr: addr(
                args.flight_addr,
                file.flight_addr,
                DEFAULT_FLIGHT_ADDR,
                "flight_addr",
            )?,
            http_addr: addr(
                args.http_addr,
                file.http_addr,
                DEFAULT_HTTP_ADDR,
                "http_addr",
            )?,
            tls,
            allow_paths: if args.allow_path.is_empty() {
                file.allow_path.unwrap_or_default()
            } else {
                args.allow_path
            },
            demo: args.demo.or(file.demo).unwrap_or(false),
            datafusion,
            llm: args
                .llm_base_url
                .or(file.llm_base_url)
                .map(|base_url| LlmConfig {
                    base_url,
                    model: args
                        .llm_model
                        .or(file.llm_model)
                        .unwrap_or_else(|| DEFAULT_LLM_MODEL.to_string()),
                    // A secret: from the environment only, never a flag or the file.
                    api_key: std::env::var("INSIGHTFLOW_LLM_API_KEY")
                        .or_else(|_| std::env::var("OPENAI_API_KEY"))
                        .ok()
                        .filter(|k| !k.is_empty()),
                    timeout: Duration::from_secs(
                        args.llm_timeout_secs
                            .or(file.llm_timeout_secs)
                            .unwrap_or(30)
                            .max(1),
                    ),
                }),
        })
    }
}

/// `4GiB`, `512MiB`, `2G`, `1048576` (bytes) or `50%` of this machine's memory;
/// `0` means no limit.
pub fn parse_memory_limit(text: &str) -> anyhow::Result<Option<usize>> {
    let t = text.trim();
    let bytes = if let Some(percent) = t.strip_suffix('%') {
        let percent: f64 = percent
            .trim()
            .parse()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .with_context(|| format!("memory_limit '{text}': a percentage is 0% to 100%"))?;
        match total_memory() {
            Some(total) => (total as f64 * percent / 100.0) as u64,
            // No /proc/meminfo: no way to size a share, so no limit.
            None => return Ok(None),
        }
    } else {
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: f64 = number
            .parse()
            .with_context(|| format!("memory_limit '{text}' is not like 4GiB, 512MiB or 50%"))?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            other => {
                bail!("memory_limit '{text}': unknown unit '{other}' (use KiB, MiB, GiB or %)")
            }
        };
        (number * scale as f64) as u64
    };
    Ok((bytes > 0).then_some(bytes as usize))
}

/// This machine's memory in bytes, from /proc/meminfo.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_limit("4GiB").unwrap(), Some(4 << 30));
        assert_eq!(parse_memory_limit("512MiB").unwrap(), Some(512 << 20));
        assert_eq!(parse_memory_limit("1.5G").unwrap(), Some(3 << 29));
        assert_eq!(parse_memory_limit("1000").unwrap(), Some(1000));
        assert_eq!(parse_memory_limit("0").unwrap(), None);
        let half = parse_memory_limit("50%").unwrap().unwrap();
        let total = total_memory().unwrap() as usize;
        assert!(
            half > 0 && half.abs_diff(total / 2) < 1024,
            "{half} of {total}"
        );
        assert!(parse_memory_limit("4 parsecs").is_err());
        assert!(parse_memory_limit("150%").is_err());
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../insightflow.example.toml");
        let file = FileConfig::load(&path).unwrap();
        assert_eq!(file.pg_addr.as_deref(), Some("127.0.0.1:5433"));
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "pg_addr = \"127.0.0.1:7000\"\nflight_addr = \"127.0.0.1:7001\"\n[datafusion]\n\"execution.batch_size\" = 1024\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            pg_addr: Some("127.0.0.1:9000".into()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(args).unwrap();
        assert_eq!(c.pg_addr.port(), 9000);
        assert_eq!(c.flight_addr.port(), 7001);
        assert_eq!(c.http_addr.port(), 8080);
        assert_eq!(c.datafusion["execution.batch_size"], "1024");
    }

    #[test]
    fn typos_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "pg_adr = \"127.0.0.1:7000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(ServeConfig::resolve(args).is_err());
        let args = ServeArgs {
            pg_addr: Some("localhost".into()),
            ..Default::default()
        };
        assert!(ServeConfig::resolve(args).is_err());
    }
}
