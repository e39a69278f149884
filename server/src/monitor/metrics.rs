//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Counters move when a statement's record is written (so the audit log and the
//! metrics never disagree); the memory pool and spill figures are read from
//! DataFusion's runtime when scraped.

use datafusion::execution::runtime_env::RuntimeEnv;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::audit::QueryRecord;

pub struct Metrics {
    registry: Registry,
    queries: IntCounterVec,
    duration: HistogramVec,
    rows: IntCounterVec,
    bytes: IntCounterVec,
    pub(super) connections: IntGaugeVec,
    pub(super) sessions: IntGaugeVec,
    pub(super) connections_refused: IntCounter,
    pub(super) rate_limited: IntCounterVec,
    memory_in_use: IntGauge,
    spill_bytes: IntGauge,
    spill_files: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let by = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(counter.clone()))
                .expect("unique metric");
            counter
        };
        let gauge_by = |name: &str, help: &str, labels: &[&str]| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(gauge.clone()))
                .expect("unique metric");
            gauge
        };
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(gauge.clone()))
                .expect("unique metric");
            gauge
        };
        let queries = by(
            "insightflow_queries_total",
            "Statements finished, by protocol and status (ok, error, canceled).",
            &["protocol", "status"],
        );
        let rows = by(
            "insightflow_rows_returned_total",
            "Rows sent to clients.",
            &["protocol"],
        );
        let bytes = by(
            "insightflow_bytes_returned_total",
            "Bytes of result data sent to clients.",
            &["protocol"],
        );
        let rate_limited = by(
            "insightflow_rate_limited_total",
            "Statements refused by the per-user rate limit.",
            &["protocol"],
        );
        let connections = gauge_by(
            "insightflow_connections_active",
            "Open client connections.",
            &["protocol"],
        );
        let sessions = gauge_by(
            "insightflow_sessions_active",
            "Sessions (pg connections, Flight tokens in use).",
            &["protocol"],
        );
        let connections_refused = IntCounter::new(
            "insightflow_connections_refused_total",
            "Connections refused because max_connections was reached.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(connections_refused.clone()))
            .expect("unique metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "insightflow_query_duration_seconds",
                "Statement duration from start to the last row sent.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["protocol"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        Self {
            memory_in_use: gauge(
                "insightflow_memory_pool_bytes",
                "Bytes reserved in DataFusion's memory pool.",
            ),
            spill_bytes: gauge(
                "insightflow_spill_bytes",
                "Bytes of spill files on disk now.",
            ),
            spill_files: gauge("insightflow_spill_files", "Spill files on disk now."),
            registry,
            queries,
            duration,
            rows,
            bytes,
            connections,
            sessions,
            connections_refused,
            rate_limited,
        }
    }

    pub(super) fn record(&self, record: &QueryRecord) {
        let protocol = record.protocol.as_str();
        self.queries
            .with_label_values(&[protocol, record.status.as_str()])
            .inc();
        self.duration
            .with_label_values(&[protocol])
            .observe(record.duration_ms / 1000.0);
        self.rows.with_label_values(&[protocol]).inc_by(record.rows);
        self.bytes
            .with_label_values(&[protocol])
            .inc_by(record.bytes);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, runtime: &RuntimeEnv) -> String {
        self.memory_in_use
            .set(runtime.memory_pool.reserved() as i64);
        let spilling = runtime.disk_manager.spilling_progress();
        self.spill_bytes.set(spilling.current_bytes as i64);
        self.spill_files.set(spilling.active_files_count as i64);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
