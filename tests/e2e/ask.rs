//! `ask` and `ask_sql` over pgwire: the offline translator's question suite, and the
//! model path against a small OpenAI-compatible endpoint started by the test.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::TestServer;

/// Rows as text, from the simple protocol.
async fn rows(client: &Client, sql: &str) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    Ok(client
        .simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// Same values, numbers compared with a relative tolerance (sums may add in any order).
fn same(a: &[Vec<String>], b: &[Vec<String>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(ra, rb)| {
            ra.len() == rb.len()
                && ra
                    .iter()
                    .zip(rb)
                    .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                        _ => x == y,
                    })
        })
}

/// (question, an independently written query giving the answer, whether order matters)
const QUESTIONS: &[(&str, &str, bool)] = &[
    ("total revenue", "SELECT sum(revenue) FROM sales", false),
    ("What is the total revenue by region?", "SELECT region, sum(revenue) FROM sales GROUP BY region", false),
    ("revenue per region", "SELECT region, sum(revenue) FROM sales GROUP BY region", false),
    ("average revenue by region", "SELECT region, avg(revenue) FROM sales GROUP BY region", false),
    ("how many orders are there", "SELECT count(*) FROM sales", false),
    ("how many customers are there", "SELECT count(*) FROM customers", false),
    ("number of products", "SELECT count(*) FROM products", false),
    ("top 3 regions by revenue", "SELECT region, sum(revenue) AS r FROM sales GROUP BY region ORDER BY r DESC LIMIT 3", true),
    ("bottom 2 products by revenue", "SELECT p.name, sum(s.revenue) AS r FROM sales s, products p WHERE s.product_id = p.product_id GROUP BY p.name ORDER BY r ASC LIMIT 2", true),
    ("top 5 customers by revenue", "SELECT c.name, sum(s.revenue) AS r FROM sales s, customers c WHERE s.customer_id = c.customer_id GROUP BY c.name ORDER BY r DESC LIMIT 5", true),
    ("total quantity by category", "SELECT p.category, sum(s.quantity) FROM sales s, products p WHERE s.product_id = p.product_id GROUP BY p.category", false),
    ("revenue by month", "SELECT CAST(date_trunc('month', order_date) AS DATE), sum(revenue) FROM sales GROUP BY 1", false),
    ("revenue in 2025 by quarter", "SELECT CAST(date_trunc('quarter', order_date) AS DATE), sum(revenue) FROM sales WHERE EXTRACT(YEAR FROM order_date) = 2025 GROUP BY 1", false),
    ("total revenue in the North region", "SELECT sum(revenue) FROM sales WHERE region = 'North'", false),
    ("how many orders in the West region", "SELECT count(*) FROM sales WHERE region = 'West'", false),
    ("average quantity per product", "SELECT p.name, avg(s.quantity) FROM sales s, products p WHERE s.product_id = p.product_id GROUP BY p.name", false),
    ("maximum revenue", "SELECT max(revenue) FROM sales", false),
    ("minimum unit price", "SELECT min(unit_price) FROM products", false),
    ("which day had the highest revenue", "SELECT order_date, sum(revenue) AS r FROM sales GROUP BY order_date ORDER BY r DESC LIMIT 1", true),
    ("lowest revenue month", "SELECT CAST(date_trunc('month', order_date) AS DATE), sum(revenue) AS r FROM sales GROUP BY 1 ORDER BY r ASC LIMIT 1", true),
    ("how many distinct customers bought in the East region", "SELECT count(DISTINCT customer_id) FROM sales WHERE region = 'East'", false),
    ("revenue by segment", "SELECT c.segment, sum(s.revenue) FROM sales s, customers c WHERE s.customer_id = c.customer_id GROUP BY c.segment", false),
    ("total revenue for Laptop", "SELECT sum(s.revenue) FROM sales s, products p WHERE s.product_id = p.product_id AND p.name = 'Laptop'", false),
    ("how many orders for Phone", "SELECT count(*) FROM sales s, products p WHERE s.product_id = p.product_id AND p.name = 'Phone'", false),
    ("average unit price by category", "SELECT category, avg(unit_price) FROM products GROUP BY category", false),
    ("list products in Furniture", "SELECT * FROM products WHERE category = 'Furniture'", false),
    ("show customers in the Enterprise segment", "SELECT * FROM customers WHERE segment = 'Enterprise'", false),
    ("total revenue last 30 days", "SELECT sum(revenue) FROM sales WHERE order_date > (SELECT max(order_date) FROM sales) - INTERVAL '30 days'", false),
    ("orders per day", "SELECT order_date, count(*) FROM sales GROUP BY order_date", false),
    ("revenue by year", "SELECT CAST(date_trunc('year', order_date) AS DATE), sum(revenue) FROM sales GROUP BY 1", false),
    ("count of orders by region", "SELECT region, count(*) FROM sales GROUP BY region", false),
    ("which region has the most orders", "SELECT region, count(*) AS n FROM sales GROUP BY region ORDER BY n DESC LIMIT 1", true),
    ("which category has the highest revenue", "SELECT p.category, sum(s.revenue) AS r FROM sales s, products p WHERE s.product_id = p.product_id GROUP BY p.category ORDER BY r DESC LIMIT 1", true),
    ("total revenue from Enterprise customers", "SELECT sum(s.revenue) FROM sales s, customers c WHERE s.customer_id = c.customer_id AND c.segment = 'Enterprise'", false),
    ("top product by quantity", "SELECT p.name, sum(s.quantity) AS q FROM sales s, products p WHERE s.product_id = p.product_id GROUP BY p.name ORDER BY q DESC LIMIT 1", true),
    ("total revenue by region and category", "SELECT s.region, p.category, sum(s.revenue) FROM sales s, products p WHERE s.product_id = p.product_id GROUP BY s.region, p.category", false),
    ("how many customers signed up in 2023", "SELECT count(*) FROM customers WHERE EXTRACT(YEAR FROM signup_date) = 2023", false),
    ("revenue of Electronics in the South region", "SELECT sum(s.revenue) FROM sales s, products p WHERE s.product_id = p.product_id AND p.category = 'Electronics' AND s.region = 'South'", false),
    ("sum of quantity", "SELECT sum(quantity) FROM sales", false),
    ("mean revenue", "SELECT avg(revenue) FROM sales", false),
    ("how many orders by month in 2025", "SELECT CAST(date_trunc('month', order_date) AS DATE), count(*) FROM sales WHERE EXTRACT(YEAR FROM order_date) = 2025 GROUP BY 1", false),
    ("totl revenu by regon", "SELECT region, sum(revenue) FROM sales GROUP BY region", false),
    ("average order revenue in March 2025", "SELECT avg(revenue) FROM sales WHERE order_date >= DATE '2025-03-01' AND order_date < DATE '2025-04-01'", false),
    ("how many unique products were sold", "SELECT count(DISTINCT product_id) FROM sales", false),
    ("revenue by week in the North region", "SELECT CAST(date_trunc('week', order_date) AS DATE), sum(revenue) FROM sales WHERE region = 'North' GROUP BY 1", false),
    ("quantity by customer segment", "SELECT c.segment, sum(s.quantity) FROM sales s, customers c WHERE s.customer_id = c.customer_id GROUP BY c.segment", false),
    ("weekly revenue", "SELECT CAST(date_trunc('week', order_date) AS DATE), sum(revenue) FROM sales GROUP BY 1", false),
    ("top 3 regions by revenue last quarter", "SELECT region, sum(revenue) AS r FROM sales WHERE order_date > (SELECT max(order_date) FROM sales) - INTERVAL '3 months' GROUP BY region ORDER BY r DESC LIMIT 3", true),
    ("highest unit price", "SELECT max(unit_price) FROM products", false),
    ("total revenue in December 2024 by region", "SELECT region, sum(revenue) FROM sales WHERE order_date >= DATE '2024-12-01' AND order_date < DATE '2025-01-01' GROUP BY region", false),
];

/// Share of the suite the offline translator must answer right. Only ever raise it.
const ACCURACY_FLOOR: f64 = 1.0;

#[tokio::test]
async fn offline_translator_answers_the_question_suite() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    let mut wrong = Vec::new();
    for (question, expected_sql, ordered) in QUESTIONS {
        let expected = rows(&client, expected_sql)
            .await
            .unwrap_or_else(|e| panic!("{expected_sql}: {e}"));
        let answer = rows(
            &client,
            &format!("SELECT * FROM ask('{}')", question.replace('\'', "''")),
        )
        .await;
        let ok = match &answer {
            Ok(got) if *ordered => same(got, &expected),
            Ok(got) => {
                let (mut got, mut expected) = (got.clone(), expected.clone());
                got.sort();
                expected.sort();
                same(&got, &expected)
            }
            Err(_) => false,
        };
        if !ok {
            let sql = rows(
                &client,
                &format!("SELECT ask_sql('{}')", question.replace('\'', "''")),
            )
            .await;
            wrong.push(format!(
                "{question}: got {answer:?} via {sql:?}; expected {expected:?}"
            ));
        }
    }
    let accuracy = 1.0 - wrong.len() as f64 / QUESTIONS.len() as f64;
    println!(
        "offline ask accuracy: {}/{} = {accuracy:.3}",
        QUESTIONS.len() - wrong.len(),
        QUESTIONS.len()
    );
    assert!(QUESTIONS.len() >= 40);
    assert!(
        accuracy >= ACCURACY_FLOOR,
        "accuracy {accuracy:.3} below {ACCURACY_FLOOR}:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn offline_translator_says_when_it_does_not_understand() {
    let server = TestServer::spawn();
    let client = server.pg_client().await;
    for question in [
        "what is the weather like",
        "revenue by color",
        "hello there",
    ] {
        let err = client
            .simple_query(&format!("SELECT * FROM ask('{question}')"))
            .await
            .expect_err(question);
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "22023", "{question}: {}", db.message());
        assert!(
            db.message().contains("could not understand"),
            "{}",
            db.message()
        );
        assert!(
            db.message().contains("sales ("),
            "the error lists the tables: {}",
            db.message()
        );
    }
    // ask_sql gives the SQL that ask runs, validated (with a default LIMIT).
    let sql = rows(&client, "SELECT ask_sql('total revenue by region')")
        .await
        .unwrap();
    assert_eq!(
        sql[0][0],
        "SELECT region, sum(revenue) AS total_revenue FROM sales GROUP BY 1 ORDER BY 1 LIMIT 1000"
    );
    // Bad arguments are clear errors too.
    let err = client
        .simple_query("SELECT * FROM ask(42)")
        .await
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("expects a question"),
        "{err:?}"
    );
}

/// A chat-completions endpoint that answers from a script and records each request.
#[derive(Clone, Default)]
struct FakeModel {
    replies: Arc<Mutex<VecDeque<(Duration, String)>>>,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl FakeModel {
    fn new(replies: &[&str]) -> Self {
        let model = Self::default();
        model
            .replies
            .lock()
            .unwrap()
            .extend(replies.iter().map(|r| (Duration::ZERO, r.to_string())));
        model
    }

    /// Serves on a free port; returns the base URL as SDKs take it.
    async fn start(&self) -> String {
        async fn complete(
            State(model): State<FakeModel>,
            Json(body): Json<serde_json::Value>,
        ) -> Json<serde_json::Value> {
            model.requests.lock().unwrap().push(body);
            let (delay, content) = model
                .replies
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or((Duration::ZERO, "I have nothing more to say.".into()));
            tokio::time::sleep(delay).await;
            Json(serde_json::json!({
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                "model": "test-model",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            }))
        }
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1")
    }

    fn request_text(&self, i: usize) -> String {
        self.requests.lock().unwrap()[i].to_string()
    }
}

fn with_model(base_url: &str, timeout_secs: &str) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_in(
        dir.path(),
        &[
            "--demo",
            "--llm-base-url",
            base_url,
            "--llm-model",
            "test-model",
            "--llm-timeout-secs",
            timeout_secs,
        ],
    );
    (dir, server)
}

#[tokio::test]
async fn model_sql_in_prose_and_fences_runs_and_the_prompt_holds_the_schema() {
    let model = FakeModel::new(&[
        "Sure! Here is the query:\n```sql\nSELECT region, count(*) AS orders FROM sales GROUP BY region ORDER BY region;\n```\nIt counts orders.",
        "The answer is SELECT sum(quantity) AS units FROM sales; which sums quantities.",
    ]);
    let (_dir, server) = with_model(&model.start().await, "10");
    let client = server.pg_client().await;
    let got = rows(&client, "SELECT * FROM ask('orders per region')")
        .await
        .unwrap();
    let expected = rows(
        &client,
        "SELECT region, count(*) FROM sales GROUP BY region ORDER BY region",
    )
    .await
    .unwrap();
    assert_eq!(got, expected);
    let prompt = model.request_text(0);
    assert!(prompt.contains("test-model"), "{prompt}");
    assert!(prompt.contains("orders per region"), "{prompt}");
    assert!(prompt.contains("TABLE sales (order_id INTEGER"), "{prompt}");
    assert!(
        prompt.contains("'North'"),
        "sample values are in the prompt: {prompt}"
    );
    assert!(
        !prompt.contains("pg_catalog") && !prompt.contains("information_schema"),
        "{prompt}"
    );

    let sql = rows(&client, "SELECT ask_sql('units sold')").await.unwrap();
    assert_eq!(
        sql[0][0],
        "SELECT sum(quantity) AS units FROM sales LIMIT 1000"
    );
}

#[tokio::test]
async fn destructive_or_system_sql_from_the_model_never_runs() {
    let model = FakeModel::new(&[
        "```sql\nDROP TABLE sales\n```",
        "```sql\nCOPY sales TO 'stolen.csv'\n```",
        "```sql\nSELECT * FROM information_schema.tables\n```",
    ]);
    let (_dir, server) = with_model(&model.start().await, "10");
    let client = server.pg_client().await;
    let err = client
        .simple_query("SELECT * FROM ask('delete everything')")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "42501", "{}", db.message());
    assert!(
        db.message()
            .contains("Last SQL tried: SELECT * FROM information_schema.tables"),
        "{}",
        db.message()
    );
    // Each rejection went back to the model with the reason.
    assert_eq!(model.requests.lock().unwrap().len(), 3);
    assert!(
        model.request_text(1).contains("DROP TABLE sales")
            && model.request_text(1).contains("read-only")
    );
    let count = rows(&client, "SELECT count(*) FROM sales").await.unwrap();
    assert_eq!(count, vec![vec!["2000".to_string()]], "the table is intact");
}

#[tokio::test]
async fn a_wrong_column_goes_back_to_the_model_and_the_retry_succeeds() {
    let model = FakeModel::new(&[
        "```sql\nSELECT regio, sum(revenue) FROM sales GROUP BY regio\n```",
        "```sql\nSELECT region, sum(revenue) AS revenue FROM sales GROUP BY region ORDER BY region\n```",
    ]);
    let (_dir, server) = with_model(&model.start().await, "10");
    let client = server.pg_client().await;
    let got = rows(&client, "SELECT * FROM ask('revenue by region')")
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0][0], "East");
    let second = model.request_text(1);
    assert!(
        second.contains("regio") && second.contains("rejected"),
        "{second}"
    );
}

#[tokio::test]
async fn a_model_that_is_down_or_slow_gives_a_clear_error_not_a_hang() {
    // Down: nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let (_dir, server) = with_model(&url, "5");
    let client = server.pg_client().await;
    let started = Instant::now();
    let err = client
        .simple_query("SELECT * FROM ask('total revenue')")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "58000", "{}", db.message());
    assert!(db.message().contains("language model"), "{}", db.message());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        rows(&client, "SELECT 1").await.unwrap()[0][0],
        "1",
        "still serving"
    );

    // Slow: the reply would come after the timeout.
    let model = FakeModel::default();
    model
        .replies
        .lock()
        .unwrap()
        .push_back((Duration::from_secs(30), "SELECT 1".into()));
    let (_dir2, server) = with_model(&model.start().await, "1");
    let client = server.pg_client().await;
    let started = Instant::now();
    let err = client
        .simple_query("SELECT * FROM ask('total revenue')")
        .await
        .unwrap_err();
    let message = err
        .as_db_error()
        .expect("server error")
        .message()
        .to_string();
    assert!(message.contains("no answer within 1 s"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
