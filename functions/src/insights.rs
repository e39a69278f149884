//! `insights(source)`: the findings worth reading first, ranked, each with SQL that
//! proves it.
//!
//! ```sql
//! SELECT rank, kind, title, evidence_sql FROM insights('sales');
//! ```
//!
//! It picks a measure (the first numeric column that is not a key, preferring money or
//! amount names), a time column (the first date or timestamp) and categories (text
//! columns with 2–50 values), then looks for: a trend over time, a weekday pattern,
//! anomalous days, the segment that differs most, concentration (the top 20% of an
//! entity's values giving most of the measure), strong correlations, and high-severity
//! data-quality problems. Scores are 0–1; rank 1 is the strongest finding.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::array::{Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;

use crate::anomalies::Anomalies;
use crate::quality::{is_key, Quality};
use crate::report::{no_more_args, Report};
use crate::series::{self, describe_bucket};
use crate::source::{quote_ident, Source};
use crate::stats::{self, ColumnStats, Kind, Row, TableStats};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("rank", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("evidence_sql", DataType::Utf8, false),
        Field::new("recommendation", DataType::Utf8, false),
    ]))
});

#[derive(Debug)]
struct Insight {
    kind: &'static str,
    title: String,
    detail: String,
    score: f64,
    evidence_sql: String,
    recommendation: String,
}

/// The `insights` report.
#[derive(Debug, Default)]
pub struct Insights;

#[async_trait]
impl Report for Insights {
    const NAME: &'static str = "insights";

    fn from_args(args: &[Expr]) -> Result<Self> {
        no_more_args(Self::NAME, args)
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    async fn compute(&self, state: &SessionState, source: &Source) -> Result<RecordBatch> {
        let table = stats::collect(state, source, stats::EXACT_DISTINCT_LIMIT).await?;
        let mut found = Vec::new();
        if table.rows > 0 {
            let ctx = Ctx {
                state,
                source,
                table: &table,
            };
            let measure = ctx.measure();
            let time = table.columns.iter().find(|c| c.kind == Kind::Temporal);
            if let (Some(m), Some(t)) = (measure, time) {
                found.extend(ctx.trend_and_weekdays(m, t).await?);
                found.extend(ctx.anomalies(m, t).await?);
            }
            if let Some(m) = measure {
                found.extend(ctx.segments(m).await?);
                found.extend(ctx.concentration(m).await?);
            }
            found.extend(ctx.correlations().await?);
            found.extend(ctx.quality().await?);
        }
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut b = Builders::default();
        for (i, f) in found.into_iter().enumerate() {
            b.rank.append_value(i as i64 + 1);
            b.kind.append_value(f.kind);
            b.title.append_value(f.title);
            b.detail.append_value(f.detail);
            b.score
                .append_value((f.score.clamp(0.0, 1.0) * 100.0).round() / 100.0);
            b.evidence.append_value(f.evidence_sql);
            b.recommendation.append_value(f.recommendation);
        }
        b.finish()
    }
}

struct Ctx<'a> {
    state: &'a SessionState,
    source: &'a Source,
    table: &'a TableStats,
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Ctx<'_> {
    fn relation(&self) -> String {
        self.source.relation_sql()
    }

    fn numeric(&self) -> impl Iterator<Item = &ColumnStats> {
        self.table
            .columns
            .iter()
            .filter(|c| c.kind.is_numeric() && !is_key(c, self.table.rows))
    }

    fn measure(&self) -> Option<&ColumnStats> {
        let money = [
            "revenue", "amount", "sales", "price", "total", "value", "cost",
        ];
        self.numeric()
            .find(|c| money.iter().any(|w| c.name.to_lowercase().contains(w)))
            .or_else(|| self.numeric().find(|c| c.kind == Kind::Float))
            .or_else(|| self.numeric().next())
    }

    async fn trend_and_weekdays(&self, m: &ColumnStats, t: &ColumnStats) -> Result<Vec<Insight>> {
        let s = series::load(self.state, self.source, &t.name, &m.name).await?;
        let n = s.values.len();
        let mut out = Vec::new();
        if n < 8 {
            return Ok(out);
        }
        let (mq, tq) = (quote_ident(&m.name), quote_ident(&t.name));
        // Least-squares slope over the bucket index.
        let mean_x = (n - 1) as f64 / 2.0;
        let mean_y = s.values.iter().sum::<f64>() / n as f64;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, y) in s.values.iter().enumerate() {
            sxy += (i as f64 - mean_x) * (y - mean_y);
            sxx += (i as f64 - mean_x).powi(2);
        }
        let slope = sxy / sxx;
        let (start, end) = (mean_y - slope * mean_x, mean_y + slope * mean_x);
        if mean_y > 0.0 && start > 0.0 {
            let change = (end - start) / start;
            if change.abs() >= 0.1 {
                let verb = if change > 0.0 { "grew" } else { "fell" };
                out.push(Insight {
                    kind: "trend",
                    title: format!("{} {verb} {:.0}% over the period", m.name, change.abs() * 100.0),
                    detail: format!("the fitted trend goes from about {} to {} per {:?} across {n} periods", fmt_num(start), fmt_num(end), s.grain).to_lowercase(),
                    score: (change.abs()).min(1.0) * 0.9,
                    evidence_sql: format!("SELECT date_trunc('month', {tq}) AS month, sum({mq}) AS {mq} FROM {} GROUP BY 1 ORDER BY 1", self.relation()),
                    recommendation: format!("check whether the {verb} trend of {} continues with forecast({}, '{}', '{}', 30)", m.name, self.source.as_literal(), t.name, m.name),
                });
            }
        }
        if s.grain == series::Grain::Day && n >= 14 {
            // Medians, not means: one spike day must not make its weekday look busy.
            let mut by_weekday: [Vec<f64>; 7] = Default::default();
            for (ts, v) in s.ts.iter().zip(&s.values) {
                let (_, weekday) = describe_bucket(*ts, s.grain);
                let i = WEEKDAYS.iter().position(|w| *w == weekday).unwrap_or(0);
                by_weekday[i].push(*v);
            }
            let avg: Vec<f64> = by_weekday.iter().map(|v| series::median(v)).collect();
            let (hi, lo) = (argmax(&avg), argmin(&avg));
            if avg[lo] > 0.0 && avg[hi] / avg[lo] >= 1.2 {
                let ratio = avg[hi] / avg[lo];
                out.push(Insight {
                    kind: "seasonality",
                    title: format!("{}s bring {ratio:.1}x the {} of {}s", WEEKDAYS[hi], m.name, WEEKDAYS[lo]),
                    detail: format!("the median {} of a {} is {}, of a {} {}", m.name, WEEKDAYS[hi], fmt_num(avg[hi]), WEEKDAYS[lo], fmt_num(avg[lo])),
                    score: ((ratio - 1.0) / 2.0).min(1.0) * 0.8,
                    evidence_sql: format!(
                        "SELECT to_char({tq}, '%A') AS weekday, median(per_day) AS median_per_day FROM (SELECT date_trunc('day', {tq}) AS {tq}, sum({mq}) AS per_day FROM {} GROUP BY 1) AS days GROUP BY 1 ORDER BY 2 DESC",
                        self.relation()
                    ),
                    recommendation: format!("plan around the weekly pattern: staff and stock for {}s", WEEKDAYS[hi]),
                });
            }
        }
        Ok(out)
    }

    async fn anomalies(&self, m: &ColumnStats, t: &ColumnStats) -> Result<Option<Insight>> {
        let batch = Anomalies::over_time(&m.name, &t.name)
            .compute(self.state, self.source)
            .await?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let explanations = batch
            .column_by_name("explanation")
            .map(|c| c.as_string::<i32>().value(0).to_string());
        Ok(Some(Insight {
            kind: "anomaly",
            title: format!(
                "{n} unusual {} in {}",
                if n == 1 { "period" } else { "periods" },
                m.name
            ),
            detail: format!("the largest: {}", explanations.unwrap_or_default()),
            score: 0.6 + (0.05 * n as f64).min(0.3),
            evidence_sql: format!(
                "SELECT * FROM anomalies({}, '{}', '{}')",
                self.source.as_literal(),
                m.name,
                t.name
            ),
            recommendation:
                "look at what happened on those days before trusting totals that include them"
                    .into(),
        }))
    }

    async fn segments(&self, m: &ColumnStats) -> Result<Vec<Insight>> {
        let mut best: Option<Insight> = None;
        let mq = quote_ident(&m.name);
        for c in
            self.table.columns.iter().filter(|c| {
                c.kind == Kind::Text && c.distinct.is_some_and(|d| (2..=50).contains(&d))
            })
        {
            let cq = quote_ident(&c.name);
            let sql = format!(
                "SELECT CAST({cq} AS VARCHAR) AS segment, sum({mq}) / (SELECT sum({mq}) FROM {from}) AS share, count(*) OVER () AS segments \
                 FROM {from} WHERE {cq} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
                from = self.relation()
            );
            let row = Row::query(self.state, &sql).await?;
            let (Some(segment), Some(share), Some(k)) =
                (row.text("segment"), row.float("share"), row.int("segments"))
            else {
                continue;
            };
            let lift = share - 1.0 / k as f64;
            if lift < 0.05 || best.as_ref().is_some_and(|b| b.score >= lift) {
                continue;
            }
            best = Some(Insight {
                kind: "segment",
                title: format!("{segment} brings {:.0}% of {} ({k} {} values)", share * 100.0, m.name, c.name),
                detail: format!("an even split would be {:.0}% each", 100.0 / k as f64),
                score: (lift * 2.0).min(1.0) * 0.7 + 0.1,
                evidence_sql: format!(
                    "SELECT {cq}, sum({mq}) AS {mq}, 100 * sum({mq}) / (SELECT sum({mq}) FROM {from}) AS pct FROM {from} GROUP BY 1 ORDER BY 2 DESC",
                    from = self.relation()
                ),
                recommendation: format!("break {} down by {} before comparing totals", m.name, c.name),
            });
        }
        Ok(best.into_iter().collect())
    }

    async fn concentration(&self, m: &ColumnStats) -> Result<Option<Insight>> {
        let rows = self.table.rows;
        let Some(e) = self.table.columns.iter().find(|c| {
            c.name != m.name && is_key(c, rows) && c.distinct.is_some_and(|d| d >= 10 && d < rows)
        }) else {
            return Ok(None);
        };
        let (eq, mq) = (quote_ident(&e.name), quote_ident(&m.name));
        let sql = format!(
            "SELECT sum(CASE WHEN rn <= ceil(n * 0.2) THEN v END) / sum(v) AS share FROM (
               SELECT v, row_number() OVER (ORDER BY v DESC) AS rn, count(*) OVER () AS n
               FROM (SELECT {eq} AS k, sum({mq}) AS v FROM {} GROUP BY 1) AS per_key) AS ranked",
            self.relation()
        );
        let share = Row::query(self.state, &sql)
            .await?
            .float("share")
            .unwrap_or(0.0);
        if share < 0.3 {
            return Ok(None);
        }
        Ok(Some(Insight {
            kind: "concentration",
            title: format!(
                "the top 20% of {} give {:.0}% of {}",
                e.name,
                share * 100.0,
                m.name
            ),
            detail: format!(
                "{} distinct {} values; an even spread would give 20%",
                e.distinct.unwrap_or(0),
                e.name
            ),
            score: ((share - 0.2) * 1.2).clamp(0.0, 1.0) * 0.7,
            evidence_sql: format!(
                "SELECT {eq}, sum({mq}) AS {mq} FROM {} GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
                self.relation()
            ),
            recommendation: format!(
                "the few largest {} values matter most: watch them first",
                e.name
            ),
        }))
    }

    async fn correlations(&self) -> Result<Vec<Insight>> {
        let cols: Vec<&ColumnStats> = self.numeric().take(10).collect();
        let mut pairs = Vec::new();
        for i in 0..cols.len() {
            for j in i + 1..cols.len() {
                pairs.push((i, j));
            }
        }
        if pairs.is_empty() {
            return Ok(vec![]);
        }
        let select: Vec<String> = pairs
            .iter()
            .map(|(i, j)| {
                format!(
                    "corr(CAST({} AS DOUBLE), CAST({} AS DOUBLE)) AS r_{i}_{j}",
                    quote_ident(&cols[*i].name),
                    quote_ident(&cols[*j].name)
                )
            })
            .collect();
        let row = Row::query(
            self.state,
            &format!("SELECT {} FROM {}", select.join(", "), self.relation()),
        )
        .await?;
        let mut out = Vec::new();
        for (i, j) in pairs {
            let Some(r) = row.float(&format!("r_{i}_{j}")) else {
                continue;
            };
            if r.abs() < 0.7 {
                continue;
            }
            let (a, b) = (&cols[i].name, &cols[j].name);
            out.push(Insight {
                kind: "correlation",
                title: format!(
                    "{a} and {b} move {} (r = {r:.2})",
                    if r > 0.0 {
                        "together"
                    } else {
                        "in opposite directions"
                    }
                ),
                detail: format!("Pearson correlation over {} rows", self.table.rows),
                score: (r.abs() - 0.5).min(0.5),
                evidence_sql: format!(
                    "SELECT corr({}, {}) AS r FROM {}",
                    quote_ident(a),
                    quote_ident(b),
                    self.relation()
                ),
                recommendation: format!("when you explain {a}, account for {b}"),
            });
        }
        Ok(out)
    }

    async fn quality(&self) -> Result<Vec<Insight>> {
        let batch = Quality.compute(self.state, self.source).await?;
        let severity = batch.column(2).as_string::<i32>();
        let check = batch.column(0).as_string::<i32>();
        let detail = batch.column(5).as_string::<i32>();
        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            if severity.value(i) != "high" {
                continue;
            }
            let column = batch.column(1).as_string::<i32>();
            let name = if column.is_valid(i) {
                column.value(i).to_string()
            } else {
                "rows".into()
            };
            out.push(Insight {
                kind: "data_quality",
                title: format!("{}: {}", check.value(i).replace('_', " "), name),
                detail: detail.value(i).to_string(),
                score: 0.55,
                evidence_sql: format!("SELECT * FROM quality({}) WHERE check_name = '{}'", self.source.as_literal(), check.value(i)),
                recommendation: "review the suggested fix in quality() before reading the other findings".into(),
            });
        }
        Ok(out)
    }
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

fn argmin(v: &[f64]) -> usize {
    (0..v.len())
        .min_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

#[derive(Default)]
struct Builders {
    rank: Int64Builder,
    kind: StringBuilder,
    title: StringBuilder,
    detail: StringBuilder,
    score: Float64Builder,
    evidence: StringBuilder,
    recommendation: StringBuilder,
}

impl Builders {
    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            SCHEMA.clone(),
            vec![
                Arc::new(self.rank.finish()),
                Arc::new(self.kind.finish()),
                Arc::new(self.title.finish()),
                Arc::new(self.detail.finish()),
                Arc::new(self.score.finish()),
                Arc::new(self.evidence.finish()),
                Arc::new(self.recommendation.finish()),
            ],
        )?)
    }
}
