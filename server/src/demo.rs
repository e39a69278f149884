//! A small demo data set, so a newcomer can query at once.
//!
//! Three CSV files are generated deterministically under `<first root>/demo/` and
//! registered as external tables `products`, `customers` and `sales` — through the same
//! catalog path a user's `CREATE EXTERNAL TABLE` takes, so they persist like any other.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::engine::{Engine, StatementResult};

const REGIONS: [&str; 4] = ["North", "South", "East", "West"];
const SEGMENTS: [&str; 3] = ["Consumer", "Small Business", "Enterprise"];
const PRODUCTS: [(&str, &str, f64); 8] = [
    ("Laptop", "Electronics", 1200.0),
    ("Phone", "Electronics", 800.0),
    ("Headphones", "Electronics", 150.0),
    ("Desk", "Furniture", 350.0),
    ("Chair", "Furniture", 220.0),
    ("Lamp", "Furniture", 45.0),
    ("Notebook", "Office", 4.5),
    ("Pen", "Office", 1.5),
];
pub const SALES_ROWS: usize = 2000;

/// A tiny deterministic generator (same data on every machine).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes the demo files (if missing) and registers the tables (if missing).
pub async fn install(engine: &Engine) -> anyhow::Result<()> {
    let root = engine
        .catalog()
        .roots()
        .roots()
        .first()
        .context("no allowed root to put the demo files in")?
        .join("demo");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    write_if_missing(&root.join("products.csv"), products_csv)?;
    write_if_missing(&root.join("customers.csv"), customers_csv)?;
    write_if_missing(&root.join("sales.csv"), sales_csv)?;
    for (table, columns) in [
        ("products", "product_id INT NOT NULL, name VARCHAR NOT NULL, category VARCHAR NOT NULL, unit_price DOUBLE NOT NULL"),
        ("customers", "customer_id INT NOT NULL, name VARCHAR NOT NULL, region VARCHAR NOT NULL, segment VARCHAR NOT NULL, signup_date DATE NOT NULL"),
        ("sales", "order_id INT NOT NULL, order_date DATE NOT NULL, customer_id INT NOT NULL, product_id INT NOT NULL, region VARCHAR NOT NULL, quantity INT NOT NULL, revenue DOUBLE NOT NULL"),
    ] {
        let sql = format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS {table} ({columns}) STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            root.join(format!("{table}.csv")).display()
        );
        for result in engine.sql(&sql).await? {
            if let StatementResult::Rows(df) = result {
                df.collect().await?;
            }
        }
    }
    tracing::info!(dir = %root.display(), "demo tables ready: products, customers, sales");
    Ok(())
}

fn write_if_missing(path: &Path, make: fn() -> String) -> anyhow::Result<()> {
    if !path.exists() {
        let tmp = path.with_extension("csv.tmp");
        std::fs::write(&tmp, make())?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(())
}

fn products_csv() -> String {
    let mut out = String::from("product_id,name,category,unit_price\n");
    for (i, (name, category, price)) in PRODUCTS.iter().enumerate() {
        let _ = writeln!(out, "{},{name},{category},{price}", i + 1);
    }
    out
}

fn customers_csv() -> String {
    let mut rng = Lcg(7);
    let mut out = String::from("customer_id,name,region,segment,signup_date\n");
    for id in 1..=40 {
        let region = REGIONS[rng.below(4) as usize];
        let segment = SEGMENTS[rng.below(3) as usize];
        let month = 1 + rng.below(12);
        let day = 1 + rng.below(28);
        let _ = writeln!(
            out,
            "{id},Customer {id:02},{region},{segment},2023-{month:02}-{day:02}"
        );
    }
    out
}

fn sales_csv() -> String {
    let mut rng = Lcg(42);
    let mut out =
        String::from("order_id,order_date,customer_id,product_id,region,quantity,revenue\n");
    let start = chrono_days_from_civil(2024, 1, 1);
    for id in 1..=SALES_ROWS {
        let day = start + rng.below(731) as i64;
        let (y, m, d) = civil_from_days(day);
        let customer = 1 + rng.below(40);
        let product = rng.below(PRODUCTS.len() as u64) as usize;
        let region = REGIONS[rng.below(4) as usize];
        let quantity = 1 + rng.below(5);
        let revenue = PRODUCTS[product].2 * quantity as f64;
        let _ = writeln!(
            out,
            "{id},{y:04}-{m:02}-{d:02},{customer},{},{region},{quantity},{revenue:.2}",
            product + 1
        );
    }
    out
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn chrono_days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for (y, m, d) in [(2024, 1, 1), (2024, 2, 29), (2025, 12, 31), (1970, 1, 1)] {
            assert_eq!(civil_from_days(chrono_days_from_civil(y, m, d)), (y, m, d));
        }
        assert_eq!(chrono_days_from_civil(1970, 1, 2), 1);
    }

    #[test]
    fn sales_are_deterministic() {
        assert_eq!(sales_csv(), sales_csv());
        assert_eq!(sales_csv().lines().count(), SALES_ROWS + 1);
    }
}
