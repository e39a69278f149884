//! SQL from an OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp ...).
//!
//! The prompt holds the catalog summary (user tables only), the dialect's rules and
//! the question; on a retry the rejected SQL and the reason follow, so the model can
//! correct itself. Each request has a deadline; connection failures and server errors
//! are retried with back-off inside it. Models wrap SQL in prose and code fences, so
//! [`extract_sql`] digs it out.

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessageArgs, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessageArgs, ChatCompletionRequestUserMessageArgs,
    CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use async_openai::Client;
use async_trait::async_trait;

use super::{AskError, CatalogSummary, Feedback, SqlGenerator};

/// Attempts per request when the endpoint fails in a way that may pass.
const ATTEMPTS: u32 = 3;

/// Where the model is and how long to wait for it.
#[derive(Clone)]
pub struct LlmConfig {
    /// As OpenAI SDKs take it, ending in `/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// The whole budget of one request, retries included.
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A [`SqlGenerator`] backed by a chat-completions endpoint.
pub struct LlmGenerator {
    client: Client<OpenAIConfig>,
    config: LlmConfig,
}

impl std::fmt::Debug for LlmGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmGenerator")
            .field("config", &self.config)
            .finish()
    }
}

impl LlmGenerator {
    pub fn new(config: LlmConfig) -> Self {
        let openai = OpenAIConfig::new()
            .with_api_base(config.base_url.trim_end_matches('/'))
            .with_api_key(config.api_key.clone().unwrap_or_default());
        Self {
            client: Client::with_config(openai),
            config,
        }
    }

    fn request(
        &self,
        question: &str,
        catalog: &CatalogSummary,
        feedback: Option<&Feedback>,
    ) -> Result<CreateChatCompletionRequest, OpenAIError> {
        let mut messages: Vec<ChatCompletionRequestMessage> = vec![
            ChatCompletionRequestSystemMessageArgs::default()
                .content(system_prompt(catalog))
                .build()?
                .into(),
            ChatCompletionRequestUserMessageArgs::default()
                .content(question)
                .build()?
                .into(),
        ];
        if let Some(feedback) = feedback {
            messages.push(
                ChatCompletionRequestAssistantMessageArgs::default()
                    .content(format!("```sql\n{}\n```", feedback.sql))
                    .build()?
                    .into(),
            );
            messages.push(
                ChatCompletionRequestUserMessageArgs::default()
                    .content(format!(
                        "That query was rejected: {}\nReply with one corrected SQL query.",
                        feedback.error
                    ))
                    .build()?
                    .into(),
            );
        }
        CreateChatCompletionRequestArgs::default()
            .model(&self.config.model)
            .temperature(0.0)
            .messages(messages)
            .build()
    }

    /// One chat completion, retried with back-off while the error may pass.
    async fn complete(&self, request: CreateChatCompletionRequest) -> Result<String, AskError> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.client.chat().create(request.clone()).await {
                Ok(response) => {
                    return response
                        .choices
                        .into_iter()
                        .find_map(|c| c.message.content)
                        .ok_or_else(|| AskError::Model("the model's reply was empty".into()))
                }
                Err(e) if attempt < ATTEMPTS && may_pass(&e) => {
                    tracing::debug!(error = %e, attempt, "language model request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(AskError::Model(format!(
                        "{} at {}: {e}",
                        self.config.model, self.config.base_url
                    )))
                }
            }
        }
    }
}

/// Connection failures and server-side errors may pass; a bad request will not.
fn may_pass(e: &OpenAIError) -> bool {
    match e {
        OpenAIError::Reqwest(e) => {
            e.is_connect() || e.is_timeout() || e.status().is_some_and(|s| s.is_server_error())
        }
        OpenAIError::ApiError(_) => false,
        _ => false,
    }
}

#[async_trait]
impl SqlGenerator for LlmGenerator {
    fn model(&self) -> &str {
        &self.config.model
    }

    async fn generate(
        &self,
        question: &str,
        catalog: &CatalogSummary,
        feedback: Option<&Feedback>,
    ) -> Result<String, AskError> {
        if catalog.tables.is_empty() {
            return Err(AskError::NotUnderstood(
                "there are no tables you may read; create one first".into(),
            ));
        }
        let request = self
            .request(question, catalog, feedback)
            .map_err(|e| AskError::Model(e.to_string()))?;
        let timeout = self.config.timeout;
        let reply = tokio::time::timeout(timeout, self.complete(request))
            .await
            .map_err(|_| {
                AskError::Model(format!(
                    "{} at {} gave no answer within {} s",
                    self.config.model,
                    self.config.base_url,
                    timeout.as_secs_f64()
                ))
            })??;
        extract_sql(&reply).ok_or_else(|| {
            AskError::Model(format!(
                "the model's reply holds no SQL query: {}",
                reply.chars().take(300).collect::<String>()
            ))
        })
    }
}

/// The rules and the tables, for the system message.
fn system_prompt(catalog: &CatalogSummary) -> String {
    format!(
        "You write one SQL query that answers the user's question.\n\
         Dialect: PostgreSQL as Apache DataFusion runs it. Rules:\n\
         - exactly one read-only SELECT (or WITH ... SELECT); never DDL, DML, COPY or SET\n\
         - use only the tables and columns listed below, with the exact names\n\
         - dates: date_trunc('month', col), EXTRACT(YEAR FROM col), col >= DATE '2025-01-01', \
         INTERVAL '30 days'\n\
         - give aggregates readable aliases, order results meaningfully, and add LIMIT for top-N\n\
         - reply with the query in a ```sql code block and nothing else\n\n\
         Tables:\n{}",
        catalog.describe()
    )
}

/// The SQL in a model's reply: the first fenced block, else the text from the first
/// `SELECT` or `WITH` on, up to the first `;`.
pub(crate) fn extract_sql(reply: &str) -> Option<String> {
    let fenced = reply.split("```").nth(1).map(|block| {
        let block = block.trim_start();
        // Drop the info string of the fence (```sql).
        match block.split_once('\n') {
            Some((first, rest)) if !first.trim().contains(' ') && !starts_query(first) => rest,
            _ => block,
        }
    });
    let text = match fenced {
        Some(block) => block.to_string(),
        None => {
            let lower = reply.to_lowercase();
            // A query has a SELECT; "with" alone is just a word of prose.
            let select = find_word(&lower, "select")?;
            let start = find_word(&lower[..select], "with").unwrap_or(select);
            reply[start..].to_string()
        }
    };
    let sql = text.split(';').next().unwrap_or_default().trim();
    (!sql.is_empty()).then(|| sql.to_string())
}

fn starts_query(line: &str) -> bool {
    let lower = line.trim().to_lowercase();
    lower.starts_with("select") || lower.starts_with("with")
}

/// Byte offset of `word` standing alone in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && after.is_some_and(|c| c.is_whitespace() || c == '(' || c == '*')
    })
}

#[cfg(test)]
mod tests {
    use super::extract_sql;

    #[test]
    fn finds_sql_in_fences_prose_and_plain_replies() {
        assert_eq!(
            extract_sql("```sql\nSELECT 1\n```").as_deref(),
            Some("SELECT 1")
        );
        assert_eq!(
            extract_sql("Here you go:\n```\nSELECT region FROM sales;\n```\nEnjoy.").as_deref(),
            Some("SELECT region FROM sales")
        );
        assert_eq!(
            extract_sql("Sure! The query is SELECT count(*) FROM sales; it counts rows.")
                .as_deref(),
            Some("SELECT count(*) FROM sales")
        );
        assert_eq!(
            extract_sql("WITH t AS (SELECT 1 AS x) SELECT x FROM t").as_deref(),
            Some("WITH t AS (SELECT 1 AS x) SELECT x FROM t")
        );
        assert_eq!(extract_sql("I cannot help with that."), None);
        assert_eq!(
            extract_sql("Selecting the rows:\n```SQL\nselect * from sales\n```").as_deref(),
            Some("select * from sales")
        );
    }
}
