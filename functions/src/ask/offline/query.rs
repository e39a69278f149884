//! From cues to a query: pick the table, the measure, groups, filters and order, then
//! write SQL.

use super::cues::{singular, Agg, Bucket, ColRef, Cue};
use crate::ask::schema::{quote_if_needed, CatalogSummary};

/// A grouping the question asks for.
#[derive(Debug, Clone)]
enum Group {
    Column(Vec<ColRef>),
    /// "by product": the label column of a table.
    Entity(usize),
    Bucket(Bucket),
}

#[derive(Debug, Clone)]
enum CountOf {
    Rows(usize),
    Column(Vec<ColRef>),
}

#[derive(Debug, Clone, Copy)]
struct Rank {
    desc: bool,
    n: Option<usize>,
    plural: bool,
}

/// What the cues say, before tables are chosen.
#[derive(Debug, Default)]
struct Reading {
    agg: Option<Agg>,
    distinct: bool,
    count: bool,
    count_of: Option<CountOf>,
    rank: Option<Rank>,
    list: bool,
    groups: Vec<Group>,
    measure: Option<Vec<ColRef>>,
    date_hint: Option<Vec<ColRef>>,
    mentioned: Vec<usize>,
    filters: Vec<(Vec<ColRef>, String)>,
    years: Vec<i32>,
    months: Vec<u32>,
    last: Option<(u32, Bucket)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Nothing,
    Group,
    Count,
    RankEntity,
}

fn is_id(catalog: &CatalogSummary, c: ColRef) -> bool {
    let name = c.summary(catalog).name.to_lowercase();
    name == "id" || name.ends_with("_id")
}

fn is_measure(catalog: &CatalogSummary, candidates: &[ColRef]) -> bool {
    candidates.iter().any(|c| {
        let t = &c.summary(catalog).data_type;
        (t.is_numeric()) && !is_id(catalog, *c)
    })
}

fn is_temporal(catalog: &CatalogSummary, candidates: &[ColRef]) -> bool {
    candidates
        .iter()
        .any(|c| c.summary(catalog).data_type.is_temporal())
}

fn read(cues: &[Cue], catalog: &CatalogSummary) -> Result<Reading, String> {
    let mut r = Reading::default();
    let mut expect = Expect::Nothing;
    let mut before_concept = Expect::Nothing;
    for cue in cues {
        let prev = expect;
        expect = Expect::Nothing;
        match cue {
            Cue::GroupBy | Cue::Which => expect = Expect::Group,
            Cue::Count => {
                r.count = true;
                expect = Expect::Count;
            }
            Cue::Distinct => {
                r.distinct = true;
                r.count = true;
                expect = Expect::Count;
            }
            Cue::Agg(a) => r.agg = Some(*a),
            Cue::Rank { desc, n } => {
                r.rank = Some(Rank {
                    desc: *desc,
                    n: *n,
                    plural: false,
                });
                expect = Expect::RankEntity;
            }
            Cue::And => expect = before_concept,
            Cue::Bucket(b) => {
                r.groups.push(Group::Bucket(*b));
                before_concept = prev;
            }
            Cue::Table { table, plural } => {
                before_concept = prev;
                match prev {
                    Expect::Count => r.count_of = Some(CountOf::Rows(*table)),
                    Expect::RankEntity if !r.groups.is_empty() => {
                        r.count_of = Some(CountOf::Rows(*table))
                    }
                    Expect::Group | Expect::RankEntity => {
                        r.groups.push(Group::Entity(*table));
                        set_plural(&mut r.rank, *plural);
                    }
                    Expect::Nothing => r.mentioned.push(*table),
                }
            }
            Cue::Column { candidates, plural } => {
                before_concept = prev;
                let c = candidates.clone();
                let measure = is_measure(catalog, &c);
                match prev {
                    Expect::Count => r.count_of = Some(CountOf::Column(c)),
                    Expect::Group | Expect::RankEntity
                        if measure
                            && r.measure.is_none()
                            && (r.rank.is_some() || !r.groups.is_empty()) =>
                    {
                        r.measure = Some(c)
                    }
                    Expect::Group | Expect::RankEntity if is_temporal(catalog, &c) => {
                        r.groups.push(Group::Bucket(Bucket::Day));
                        r.date_hint = Some(c);
                    }
                    Expect::Group | Expect::RankEntity => {
                        r.groups.push(Group::Column(c));
                        set_plural(&mut r.rank, *plural);
                    }
                    Expect::Nothing if measure => {
                        if r.measure.is_none() {
                            r.measure = Some(c);
                        }
                    }
                    Expect::Nothing if is_temporal(catalog, &c) => r.date_hint = Some(c),
                    Expect::Nothing => {}
                }
            }
            Cue::Value { candidates, value } => r.filters.push((candidates.clone(), value.clone())),
            Cue::Year(y) => r.years.push(*y),
            Cue::Month(m) => r.months.push(*m),
            Cue::Last { n, unit } => r.last = Some((*n, *unit)),
            Cue::List => r.list = true,
            Cue::Unknown(word) if prev == Expect::Group => {
                return Err(format!(
                    "I don't know what '{word}' refers to: no table, column or value has that name"
                ));
            }
            Cue::Unknown(_) => {}
        }
    }
    Ok(r)
}

fn set_plural(rank: &mut Option<Rank>, plural: bool) {
    if let Some(rank) = rank {
        rank.plural = plural;
    }
}

/// A query ready to be written as SQL.
#[derive(Debug)]
pub(crate) struct Query {
    main: usize,
    /// (table, column of main, column of table)
    joins: Vec<(usize, usize, usize)>,
    /// (expression, alias) pairs, with `ColRef`s rendered later.
    groups: Vec<(Expr, String)>,
    measure: Option<(Expr, String)>,
    filters: Vec<Expr>,
    order: Order,
    limit: Option<usize>,
}

#[derive(Debug)]
enum Order {
    None,
    Groups,
    Measure { desc: bool },
}

/// Expressions over columns; qualified only when the query joins.
#[derive(Debug, Clone)]
enum Expr {
    Column(ColRef),
    Bucket(Bucket, ColRef),
    CountRows,
    Count {
        column: ColRef,
        distinct: bool,
    },
    Agg(Agg, ColRef),
    Eq(ColRef, String),
    YearMonth {
        column: ColRef,
        year: i32,
        month: Option<u32>,
    },
    Month(ColRef, u32),
    Last {
        column: ColRef,
        n: u32,
        unit: Bucket,
    },
}

/// Builds the query the cues describe.
pub(crate) fn build(cues: &[Cue], catalog: &CatalogSummary) -> Result<Query, String> {
    let r = read(cues, catalog)?;
    let main = choose_main(&r, catalog)?;
    let mut q = Query {
        main,
        joins: Vec::new(),
        groups: Vec::new(),
        measure: None,
        filters: Vec::new(),
        order: Order::None,
        limit: None,
    };

    for (candidates, value) in &r.filters {
        let c = q.reach(candidates, catalog)?;
        q.filters.push(Expr::Eq(c, value.clone()));
    }
    let needs_date = !r.years.is_empty()
        || !r.months.is_empty()
        || r.last.is_some()
        || r.groups.iter().any(|g| matches!(g, Group::Bucket(_)));
    let date = if needs_date {
        Some(q.date_column(r.date_hint.as_deref(), catalog)?)
    } else {
        None
    };
    if let Some(date) = date {
        match (r.years.first(), r.months.first()) {
            (Some(&year), month) => q.filters.push(Expr::YearMonth {
                column: date,
                year,
                month: month.copied(),
            }),
            (None, Some(&month)) => q.filters.push(Expr::Month(date, month)),
            (None, None) => {}
        }
        if let Some((n, unit)) = r.last {
            q.filters.push(Expr::Last {
                column: date,
                n,
                unit,
            });
        }
    }
    for group in &r.groups {
        let (expr, alias) = match group {
            Group::Bucket(b) => {
                let d = date.ok_or("no date column to group by")?;
                (Expr::Bucket(*b, d), b.name().to_string())
            }
            Group::Column(candidates) => {
                let c = q.reach(candidates, catalog)?;
                (Expr::Column(c), c.summary(catalog).name.clone())
            }
            Group::Entity(table) => {
                let label = label_column(catalog, *table);
                let c = q.reach(&[label], catalog)?;
                (
                    Expr::Column(c),
                    singular(&catalog.tables[*table].name.to_lowercase()),
                )
            }
        };
        q.groups.push((expr, alias));
    }

    q.measure = q.measure_expr(&r, catalog)?;
    if q.measure.is_none()
        && q.groups.is_empty()
        && !r.list
        && r.mentioned.is_empty()
        && r.filters.is_empty()
    {
        return Err("I could not tell what to compute: name a measure (like revenue), a count, or a table to list".into());
    }
    match (r.rank, q.groups.is_empty(), &q.measure) {
        (Some(rank), false, Some(_)) => {
            q.order = Order::Measure { desc: rank.desc };
            q.limit = Some(rank.n.unwrap_or(if rank.plural { 10 } else { 1 }));
        }
        (_, false, _) => q.order = Order::Groups,
        _ => {}
    }
    Ok(q)
}

/// The table the question is about.
fn choose_main(r: &Reading, catalog: &CatalogSummary) -> Result<usize, String> {
    let prefer = |candidates: &[ColRef]| {
        candidates
            .iter()
            .find(|c| r.mentioned.contains(&c.table))
            .or(candidates.first())
            .map(|c| c.table)
    };
    if let Some(t) = r.measure.as_deref().and_then(prefer) {
        return Ok(t);
    }
    match &r.count_of {
        Some(CountOf::Rows(t)) => {
            // "how many distinct customers bought ..." counts ids in the table that
            // references them.
            if r.distinct {
                if let Some(fact) = r
                    .mentioned
                    .iter()
                    .find(|m| **m != *t && join_key(catalog, **m, *t).is_some())
                {
                    return Ok(*fact);
                }
            }
            return Ok(*t);
        }
        Some(CountOf::Column(c)) => {
            if let Some(t) = prefer(c) {
                return Ok(t);
            }
        }
        None => {}
    }
    if let Some(t) = r.mentioned.first() {
        return Ok(*t);
    }
    // The table that reaches every other one the question touches (a fact table).
    let mut involved: Vec<usize> = Vec::new();
    for g in &r.groups {
        match g {
            Group::Column(c) => involved.extend(c.iter().map(|c| c.table)),
            Group::Entity(t) => involved.push(*t),
            Group::Bucket(_) => {}
        }
    }
    involved.extend(
        r.filters
            .iter()
            .flat_map(|(c, _)| c.iter().map(|c| c.table)),
    );
    involved.extend(r.date_hint.iter().flatten().map(|c| c.table));
    if involved.is_empty() && (!r.groups.is_empty() || !r.years.is_empty() || r.last.is_some()) {
        // Only time was named: the first table with a date.
        involved.extend((0..catalog.tables.len()).filter(|t| {
            catalog.tables[*t]
                .columns
                .iter()
                .any(|c| c.data_type.is_temporal())
        }));
    }
    (0..catalog.tables.len())
        .filter(|t| {
            involved.contains(t) || involved.iter().any(|o| join_key(catalog, *t, *o).is_some())
        })
        .max_by_key(|t| {
            let reached = involved
                .iter()
                .filter(|o| **o == *t || join_key(catalog, *t, **o).is_some())
                .count();
            (reached, std::cmp::Reverse(*t))
        })
        .ok_or_else(|| "no table, column or value in the question matches the catalog".to_string())
}

/// The columns that join `a` to `b`: `a.x_id = b.x_id`, preferring `b`'s own key.
fn join_key(catalog: &CatalogSummary, a: usize, b: usize) -> Option<(usize, usize)> {
    if a == b {
        return None;
    }
    let (ta, tb) = (&catalog.tables[a], &catalog.tables[b]);
    let own_key = format!("{}_id", singular(&tb.name.to_lowercase()));
    let shared = |name: &str| {
        let ia = ta
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))?;
        let ib = tb
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))?;
        Some((ia, ib))
    };
    shared(&own_key).or_else(|| {
        let a_key = format!("{}_id", singular(&ta.name.to_lowercase()));
        shared(&a_key)
    })
}

/// The column that names a row of `table`: `name`, `*_name`, else the first text column.
fn label_column(catalog: &CatalogSummary, table: usize) -> ColRef {
    let columns = &catalog.tables[table].columns;
    let column = columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case("name"))
        .or_else(|| {
            columns
                .iter()
                .position(|c| c.name.to_lowercase().ends_with("name"))
        })
        .or_else(|| {
            columns
                .iter()
                .position(|c| matches!(c.data_type, datafusion::arrow::datatypes::DataType::Utf8))
        })
        .unwrap_or(0);
    ColRef { table, column }
}

impl Query {
    /// A column among `candidates` that the main table has or can join to.
    fn reach(&mut self, candidates: &[ColRef], catalog: &CatalogSummary) -> Result<ColRef, String> {
        if let Some(c) = candidates.iter().find(|c| c.table == self.main) {
            return Ok(*c);
        }
        if let Some(c) = candidates
            .iter()
            .find(|c| self.joins.iter().any(|j| j.0 == c.table))
        {
            return Ok(*c);
        }
        for c in candidates {
            if let Some((main_col, other_col)) = join_key(catalog, self.main, c.table) {
                self.joins.push((c.table, main_col, other_col));
                return Ok(*c);
            }
        }
        let c = candidates.first().ok_or("a word matched no column")?;
        Err(format!(
            "{} is in {}, which I cannot join to {}",
            c.summary(catalog).name,
            catalog.tables[c.table].sql_name(),
            catalog.tables[self.main].sql_name()
        ))
    }

    fn date_column(
        &mut self,
        hint: Option<&[ColRef]>,
        catalog: &CatalogSummary,
    ) -> Result<ColRef, String> {
        if let Some(hint) = hint {
            return self.reach(hint, catalog);
        }
        let table = &catalog.tables[self.main];
        table
            .columns
            .iter()
            .position(|c| c.data_type.is_temporal())
            .map(|column| ColRef {
                table: self.main,
                column,
            })
            .ok_or_else(|| {
                format!(
                    "{} has no date column to filter or group by time",
                    table.sql_name()
                )
            })
    }

    fn measure_expr(
        &mut self,
        r: &Reading,
        catalog: &CatalogSummary,
    ) -> Result<Option<(Expr, String)>, String> {
        if let Some(count_of) = &r.count_of {
            return Ok(Some(match count_of {
                CountOf::Rows(t) if *t == self.main => (Expr::CountRows, "count".into()),
                CountOf::Rows(t) => {
                    let (column, _) =
                        join_key(catalog, self.main, *t).ok_or("cannot count that")?;
                    let c = ColRef {
                        table: self.main,
                        column,
                    };
                    (
                        Expr::Count {
                            column: c,
                            distinct: true,
                        },
                        format!("distinct_{}", catalog.tables[*t].name.to_lowercase()),
                    )
                }
                CountOf::Column(candidates) => {
                    let c = self.reach(candidates, catalog)?;
                    let name = &c.summary(catalog).name;
                    let alias = if r.distinct {
                        format!("distinct_{name}")
                    } else {
                        format!("{name}_count")
                    };
                    (
                        Expr::Count {
                            column: c,
                            distinct: r.distinct,
                        },
                        alias,
                    )
                }
            }));
        }
        let explicit = r.measure.is_some() || r.agg.is_some();
        if !explicit {
            if r.count || (!self.groups.is_empty() && !r.list) {
                return Ok(Some((Expr::CountRows, "count".into())));
            }
            return Ok(None);
        }
        let c = match &r.measure {
            Some(candidates) => self.reach(candidates, catalog)?,
            None => primary_measure(catalog, self.main).ok_or_else(|| {
                format!(
                    "{} has no numeric column to {}",
                    catalog.tables[self.main].sql_name(),
                    "aggregate"
                )
            })?,
        };
        let agg = match (r.agg, r.rank) {
            (Some(a), _) => a,
            (None, Some(rank)) if self.groups.is_empty() => {
                if rank.desc {
                    Agg::Max
                } else {
                    Agg::Min
                }
            }
            (None, _) => Agg::Sum,
        };
        let name = &c.summary(catalog).name;
        let alias = match agg {
            Agg::Sum => format!("total_{name}"),
            Agg::Avg => format!("avg_{name}"),
            Agg::Min => format!("min_{name}"),
            Agg::Max => format!("max_{name}"),
        };
        Ok(Some((Expr::Agg(agg, c), alias)))
    }

    /// The query as SQL.
    pub(crate) fn to_sql(&self, catalog: &CatalogSummary) -> String {
        let qualify = !self.joins.is_empty();
        let render = |e: &Expr| render(e, catalog, qualify);
        let main = catalog.tables[self.main].sql_name();
        let mut select: Vec<String> = self
            .groups
            .iter()
            .map(|(e, alias)| match e {
                Expr::Column(c) if !qualify && c.summary(catalog).name == *alias => render(e),
                _ => format!("{} AS {}", render(e), quote_if_needed(alias)),
            })
            .collect();
        if let Some((e, alias)) = &self.measure {
            select.push(format!("{} AS {}", render(e), quote_if_needed(alias)));
        }
        if select.is_empty() {
            select.push(if qualify {
                format!("{main}.*")
            } else {
                "*".into()
            });
        }
        let mut sql = format!("SELECT {} FROM {main}", select.join(", "));
        for (table, main_col, other_col) in &self.joins {
            let other = catalog.tables[*table].sql_name();
            sql.push_str(&format!(
                " JOIN {other} ON {main}.{} = {other}.{}",
                quote_if_needed(&catalog.tables[self.main].columns[*main_col].name),
                quote_if_needed(&catalog.tables[*table].columns[*other_col].name)
            ));
        }
        if !self.filters.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(render).collect();
            sql.push_str(&format!(" WHERE {}", filters.join(" AND ")));
        }
        // Groups are the first select items: GROUP BY and ORDER BY name them by position.
        let positions = (1..=self.groups.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if !self.groups.is_empty() && self.measure.is_some() {
            sql.push_str(&format!(" GROUP BY {positions}"));
        }
        match (&self.order, &self.measure) {
            (Order::Measure { desc }, Some((_, alias))) => {
                sql.push_str(&format!(
                    " ORDER BY {} {}, {}",
                    quote_if_needed(alias),
                    if *desc { "DESC" } else { "ASC" },
                    positions
                ));
            }
            (Order::Groups, _) => {
                sql.push_str(&format!(" ORDER BY {positions}"));
            }
            _ => {}
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }
}

/// The column a bare "total" sums: a known measure name, else the first non-id number.
fn primary_measure(catalog: &CatalogSummary, table: usize) -> Option<ColRef> {
    const NAMES: [&str; 8] = [
        "revenue", "amount", "total", "sales", "value", "price", "quantity", "count",
    ];
    let columns = &catalog.tables[table].columns;
    let numeric = |i: &usize| {
        columns[*i].data_type.is_numeric() && !is_id(catalog, ColRef { table, column: *i })
    };
    NAMES
        .iter()
        .find_map(|n| {
            (0..columns.len())
                .filter(numeric)
                .find(|i| columns[*i].name.to_lowercase().contains(n))
        })
        .or_else(|| (0..columns.len()).find(numeric))
        .map(|column| ColRef { table, column })
}

fn render(e: &Expr, catalog: &CatalogSummary, qualify: bool) -> String {
    let col = |c: &ColRef| {
        let name = quote_if_needed(&c.summary(catalog).name);
        if qualify {
            format!("{}.{name}", catalog.tables[c.table].sql_name())
        } else {
            name
        }
    };
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match e {
        Expr::Column(c) => col(c),
        Expr::Bucket(Bucket::Day, c) => format!("CAST({} AS DATE)", col(c)),
        Expr::Bucket(b, c) => format!("CAST(date_trunc('{}', {}) AS DATE)", b.name(), col(c)),
        Expr::CountRows => "count(*)".into(),
        Expr::Count {
            column,
            distinct: true,
        } => format!("count(DISTINCT {})", col(column)),
        Expr::Count {
            column,
            distinct: false,
        } => format!("count({})", col(column)),
        Expr::Agg(agg, c) => {
            let f = match agg {
                Agg::Sum => "sum",
                Agg::Avg => "avg",
                Agg::Min => "min",
                Agg::Max => "max",
            };
            format!("{f}({})", col(c))
        }
        Expr::Eq(c, v) => format!("{} = {}", col(c), literal(v)),
        Expr::YearMonth {
            column,
            year,
            month,
        } => {
            let (from, to) = match month {
                Some(m) if *m == 12 => (format!("{year}-12-01"), format!("{}-01-01", year + 1)),
                Some(m) => (
                    format!("{year}-{m:02}-01"),
                    format!("{year}-{:02}-01", m + 1),
                ),
                None => (format!("{year}-01-01"), format!("{}-01-01", year + 1)),
            };
            let c = col(column);
            format!("{c} >= DATE '{from}' AND {c} < DATE '{to}'")
        }
        Expr::Month(c, m) => format!("EXTRACT(MONTH FROM {}) = {m}", col(c)),
        Expr::Last { column, n, unit } => {
            let interval = match unit {
                Bucket::Day => format!("{n} days"),
                Bucket::Week => format!("{} days", n * 7),
                Bucket::Month => format!("{n} months"),
                Bucket::Quarter => format!("{} months", n * 3),
                Bucket::Year => format!("{n} years"),
            };
            let name = quote_if_needed(&column.summary(catalog).name);
            let table = catalog.tables[column.table].sql_name();
            format!(
                "{} > (SELECT max({name}) FROM {table}) - INTERVAL '{interval}'",
                col(column)
            )
        }
    }
}
