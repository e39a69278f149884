//! `ask('question')` and `ask_sql('question')`: questions in plain language, answered
//! by SQL that is checked before it runs.
//!
//! ```sql
//! SELECT * FROM ask('top 3 regions by revenue');
//! SELECT ask_sql('average quantity per product');
//! ```
//!
//! A [`SqlGenerator`] writes a candidate query from the question and a summary of the
//! catalog ([`CatalogSummary`]): an OpenAI-compatible model ([`LlmGenerator`]) or the
//! built-in [`OfflineTranslator`]. Every candidate goes through the one validator
//! ([`validate`]) — a single read-only query over tables that exist and may be read,
//! planned by DataFusion, with a default `LIMIT` — and a rejection goes back to the
//! generator for at most two more tries. `ask` then runs the validated plan (a view over
//! it, so the optimizer sees through it); nothing unvalidated ever runs.

mod blocking;
mod llm;
mod notice;
mod offline;
mod schema;
mod validate;

use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::datasource::ViewTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

pub use llm::{LlmConfig, LlmGenerator};
pub use notice::{collect_notes, AskNote, Notes};
pub use offline::OfflineTranslator;
pub use schema::{CatalogSummary, ColumnSummary, TableSummary};
pub use validate::{validate, Rejection, Validated};

use crate::source::string_literal;
use insightflow_catalog::access::Caller;

/// How many times a generator may try before the user gets the last error.
const MAX_TRIES: usize = 3;
/// The `LIMIT` added to generated queries that have none.
pub const DEFAULT_LIMIT: usize = 1000;

/// Why a question got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The offline translator could not map the question to the catalog.
    #[error("ask could not understand the question: {0}")]
    NotUnderstood(String),
    /// The last candidate was not a read-only query over readable tables.
    #[error("ask refused the generated SQL after {tries} tries: {reason}. Last SQL tried: {sql}")]
    Refused {
        sql: String,
        reason: String,
        tries: usize,
    },
    /// The last candidate did not plan (unknown column, type error ...).
    #[error("ask found no valid SQL after {tries} tries: {error}. Last SQL tried: {sql}")]
    Invalid {
        sql: String,
        error: DataFusionError,
        tries: usize,
    },
    /// The language model could not be reached or gave no usable answer.
    #[error("ask could not get SQL from the language model: {0}")]
    Model(String),
}

impl From<AskError> for DataFusionError {
    fn from(e: AskError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// A failed candidate, shown to the generator on its next try.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub sql: String,
    pub error: String,
}

/// Writes one SQL query for a question.
#[async_trait]
pub trait SqlGenerator: std::fmt::Debug + Send + Sync {
    /// What wrote the SQL, for the query log: the model name, or `offline`.
    fn model(&self) -> &str;

    /// A candidate query for `question` over `catalog`; `feedback` holds the previous
    /// candidate and why it was rejected.
    async fn generate(
        &self,
        question: &str,
        catalog: &CatalogSummary,
        feedback: Option<&Feedback>,
    ) -> std::result::Result<String, AskError>;
}

/// A validated answer to a question.
#[derive(Debug)]
pub struct Answer {
    pub sql: String,
    pub plan: LogicalPlan,
    pub tries: usize,
}

/// Generates, validates and retries: the one path both `ask` and `ask_sql` take.
#[derive(Debug, Clone)]
pub struct Asker {
    generator: Arc<dyn SqlGenerator>,
}

impl Asker {
    pub fn new(generator: Arc<dyn SqlGenerator>) -> Self {
        Self { generator }
    }

    /// Answers `question` with a validated query, or says why it cannot.
    pub async fn answer(&self, state: &SessionState, question: &str) -> Result<Answer> {
        let model = self.generator.model();
        let result = self.try_answer(state, question).await;
        let (sql, tries, outcome) = match &result {
            Ok(answer) => (Some(answer.sql.clone()), answer.tries, "ok".to_string()),
            Err(e) => {
                let (sql, tries) = match e {
                    AskError::Refused { sql, tries, .. } | AskError::Invalid { sql, tries, .. } => {
                        (Some(sql.clone()), *tries)
                    }
                    _ => (None, 0),
                };
                (sql, tries, e.to_string())
            }
        };
        tracing::info!(
            target: "insightflow::ask", question, sql = sql.as_deref().unwrap_or(""), model,
            tries, outcome, "ask"
        );
        notice::push_ask(AskNote {
            question: question.to_string(),
            sql,
            model: model.to_string(),
            tries,
            outcome,
        });
        result.map_err(DataFusionError::from)
    }

    async fn try_answer(
        &self,
        state: &SessionState,
        question: &str,
    ) -> std::result::Result<Answer, AskError> {
        let catalog = CatalogSummary::read(state).await;
        let mut feedback: Option<Feedback> = None;
        let mut last: Option<(String, Rejection)> = None;
        let mut tries = 0;
        while tries < MAX_TRIES {
            tries += 1;
            let sql = self
                .generator
                .generate(question, &catalog, feedback.as_ref())
                .await?;
            if last.as_ref().is_some_and(|(previous, _)| *previous == sql) {
                break; // the same answer again: more tries will not help
            }
            match validate(state, &sql, DEFAULT_LIMIT).await {
                Ok(valid) => {
                    return Ok(Answer {
                        sql: valid.sql,
                        plan: valid.plan,
                        tries,
                    })
                }
                Err(rejection) => {
                    feedback = Some(Feedback {
                        sql: sql.clone(),
                        error: rejection.to_string(),
                    });
                    last = Some((sql, rejection));
                }
            }
        }
        Err(match last {
            Some((sql, Rejection::Refused(reason))) => AskError::Refused { sql, reason, tries },
            Some((sql, Rejection::Invalid(error))) => AskError::Invalid { sql, error, tries },
            None => AskError::Model("the generator produced nothing".into()),
        })
    }
}

/// Registers `ask` (table function) and `ask_sql` (scalar function) on `ctx`.
pub fn register(ctx: &SessionContext, asker: Asker) {
    ctx.register_udtf("ask", Arc::new(AskFunc(asker.clone())));
    ctx.register_udf(ScalarUDF::new_from_impl(AskSql {
        asker,
        state: ctx.state_weak_ref(),
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
    }));
}

/// The question: the one string literal argument.
fn question_arg(function: &str, args: &[datafusion::logical_expr::Expr]) -> Result<String> {
    match args {
        [arg] => match string_literal(arg) {
            Some(q) if !q.trim().is_empty() => Ok(q),
            _ => plan_err!("{function} expects a question as a string, like {function}('total revenue by region'), got {arg}"),
        },
        _ => plan_err!(
            "{function} expects one argument, a question like {function}('total revenue by region'), got {}",
            args.len()
        ),
    }
}

/// `SELECT * FROM ask('...')`: the rows of the validated query.
#[derive(Debug)]
struct AskFunc(Asker);

impl TableFunctionImpl for AskFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let question = question_arg("ask", args.exprs())?;
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("ask needs a SessionState".into()))?
            .clone();
        let asker = self.0.clone();
        let answer = blocking::run(async move { asker.answer(&state, &question).await })??;
        notice::push(format!("ask: {}", answer.sql));
        Ok(Arc::new(ViewTable::new(answer.plan, Some(answer.sql))))
    }
}

/// `SELECT ask_sql('...')`: the validated SQL text.
#[derive(Debug)]
struct AskSql {
    asker: Asker,
    state: Weak<RwLock<SessionState>>,
    signature: Signature,
}

impl PartialEq for AskSql {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for AskSql {}
impl std::hash::Hash for AskSql {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "ask_sql".hash(state)
    }
}

impl ScalarUDFImpl for AskSql {
    fn name(&self) -> &str {
        "ask_sql"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    /// A literal question is answered while the statement is planned, where the
    /// caller's rights are known; the plan then holds only the SQL text.
    fn simplify(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
        _info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        use datafusion::logical_expr::simplify::ExprSimplifyResult;
        let question = match &args[..] {
            [arg] => string_literal(arg),
            _ => None,
        };
        let Some(question) = question else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let Some(state) = self.state.upgrade() else {
            return exec_err!("ask_sql: the session is gone");
        };
        let state = state.read().clone();
        let asker = self.asker.clone();
        let sql = blocking::run(async move { asker.answer(&state, &question).await })??.sql;
        Ok(ExprSimplifyResult::Simplified(
            datafusion::logical_expr::lit(sql),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(state) = self.state.upgrade() else {
            return exec_err!("ask_sql: the session is gone");
        };
        // Rows are computed after planning, possibly on another task: without the
        // caller there is no knowing which tables the prompt may show.
        if Caller::current().is_none()
            && state
                .read()
                .analyzer()
                .rules
                .iter()
                .any(|r| r.name() == "insightflow_check_access")
        {
            return exec_err!("ask_sql takes one question as a string literal, like ask_sql('total revenue by region')");
        }
        let state = state.read().clone();
        let questions: ArrayRef = match &args.args[..] {
            [ColumnarValue::Scalar(s)] => s.to_array_of_size(1)?,
            [ColumnarValue::Array(a)] => a.clone(),
            _ => return exec_err!("ask_sql expects one question"),
        };
        let questions = datafusion::arrow::compute::cast(&questions, &DataType::Utf8)?;
        let questions: Vec<Option<String>> = questions
            .as_string::<i32>()
            .iter()
            .map(|q| q.map(str::to_string))
            .collect();
        let asker = self.asker.clone();
        let sqls = blocking::run(async move {
            let mut out = Vec::with_capacity(questions.len());
            for q in questions {
                out.push(match q {
                    Some(q) => Some(asker.answer(&state, &q).await?.sql),
                    None => None,
                });
            }
            Ok::<_, DataFusionError>(out)
        })??;
        if let ([ColumnarValue::Scalar(_)], [sql]) = (&args.args[..], &sqls[..]) {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(sql.clone())));
        }
        let mut b = StringBuilder::new();
        for sql in sqls {
            b.append_option(sql);
        }
        let array: ArrayRef = Arc::new(b.finish());
        Ok(ColumnarValue::Array(array))
    }
}
