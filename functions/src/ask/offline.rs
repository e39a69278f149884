//! The offline translator: common question forms to SQL, with no model at all.
//!
//! The question is read as a sequence of cues found by matching words against the
//! catalog — tables, columns, their synonyms, values seen in the data, fuzzy spellings —
//! and a small vocabulary of aggregates ("total", "average", "how many", "distinct"),
//! groupings ("by", "per", "each", "which"), rankings ("top 3", "lowest"), time buckets
//! ("by month") and time filters ("in 2025", "in March", "last 30 days"). The cues fill
//! a [`Query`] (measure, groups, filters, order, limit) that is written as SQL, joining
//! a related table through a shared `*_id` column when a cue lives there.
//!
//! Relative time ("last 30 days") counts back from the newest date in the data, so
//! historical data answers too. A question with no recognisable table, column or value,
//! or a "by"/"per" followed by a word that matches nothing, is refused with the tables
//! it could have used, rather than guessed.

mod cues;
mod query;

use async_trait::async_trait;

use super::{AskError, CatalogSummary, Feedback, SqlGenerator};

/// Answers common questions from the catalog alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct OfflineTranslator;

#[async_trait]
impl SqlGenerator for OfflineTranslator {
    fn model(&self) -> &str {
        "offline"
    }

    async fn generate(
        &self,
        question: &str,
        catalog: &CatalogSummary,
        _feedback: Option<&Feedback>,
    ) -> Result<String, AskError> {
        translate(question, catalog).map_err(AskError::NotUnderstood)
    }
}

/// The SQL for `question`, or why it cannot be written.
pub(crate) fn translate(question: &str, catalog: &CatalogSummary) -> Result<String, String> {
    if catalog.tables.is_empty() {
        return Err("there are no tables you may read; create one first".into());
    }
    let cues = cues::read(question, catalog)?;
    let query = query::build(&cues, catalog).map_err(|why| {
        format!(
            "{why}. Tables: {}. Try a question like 'total revenue by region' or 'top 3 products by quantity'",
            tables_hint(catalog)
        )
    })?;
    Ok(query.to_sql(catalog))
}

fn tables_hint(catalog: &CatalogSummary) -> String {
    catalog
        .tables
        .iter()
        .take(10)
        .map(|t| {
            let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            format!("{} ({})", t.sql_name(), cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
