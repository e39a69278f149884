//! Reading a question into cues: what each word means for the query.

use crate::ask::schema::{CatalogSummary, ColumnSummary};

/// A column of the catalog: indices of table and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColRef {
    pub table: usize,
    pub column: usize,
}

impl ColRef {
    pub fn summary<'c>(&self, catalog: &'c CatalogSummary) -> &'c ColumnSummary {
        &catalog.tables[self.table].columns[self.column]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Agg {
    Sum,
    Avg,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
            Bucket::Quarter => "quarter",
            Bucket::Year => "year",
        }
    }
}

/// What a word (or a few) of the question means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cue {
    Agg(Agg),
    /// "how many", "number of", "count"
    Count,
    /// "distinct", "unique"
    Distinct,
    /// "by", "per", "each", "across"
    GroupBy,
    /// "which", "what" (a group when a table or column follows)
    Which,
    /// "top 3", "highest", "lowest": `desc` for the top.
    Rank {
        desc: bool,
        n: Option<usize>,
    },
    Bucket(Bucket),
    Table {
        table: usize,
        plural: bool,
    },
    /// A column; the same name may be in several tables.
    Column {
        candidates: Vec<ColRef>,
        plural: bool,
    },
    /// A value seen in the data, with the columns that hold it.
    Value {
        candidates: Vec<ColRef>,
        value: String,
    },
    Year(i32),
    Month(u32),
    /// "last 30 days": the `n` units up to the newest date.
    Last {
        n: u32,
        unit: Bucket,
    },
    /// "list", "show"
    List,
    And,
    /// A word that matches nothing.
    Unknown(String),
}

const STOPWORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "of",
    "in",
    "on",
    "at",
    "for",
    "from",
    "to",
    "with",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "do",
    "does",
    "did",
    "me",
    "my",
    "our",
    "we",
    "i",
    "you",
    "all",
    "there",
    "have",
    "has",
    "had",
    "or",
    "that",
    "this",
    "those",
    "these",
    "it",
    "its",
    "please",
    "give",
    "tell",
    "about",
    "as",
    "over",
    "during",
    "where",
    "when",
    "who",
    "made",
    "get",
    "see",
    "want",
    "know",
    "can",
    "could",
    "would",
    "whats",
    "s",
    "their",
    "them",
    "than",
    "into",
    "within",
    "up",
    "out",
    "only",
    "so",
    "far",
    "ever",
    "overall",
    "every",
    "time",
    "data",
    "value",
    "values",
    "whole",
    "entire",
    "any",
    "some",
    "did",
    "had",
    "get",
    "got",
    "generated",
    "brought",
    "produced",
    "recorded",
    "placed",
    "made",
    "come",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Words that name the same thing, by canonical (singular) word.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("customer", &["client", "buyer", "shopper", "account"]),
    ("product", &["item", "article", "good", "sku"]),
    (
        "sale",
        &[
            "order",
            "purchase",
            "transaction",
            "sold",
            "bought",
            "ordered",
            "purchased",
            "sell",
        ],
    ),
    (
        "revenue",
        &[
            "income",
            "turnover",
            "earning",
            "amount",
            "money",
            "sale amount",
        ],
    ),
    (
        "quantity",
        &["unit", "qty", "volume", "units sold", "item sold"],
    ),
    ("price", &["cost", "unit cost"]),
    ("region", &["area", "territory", "zone"]),
    ("category", &["type", "kind", "class"]),
    ("segment", &["tier", "customer type"]),
    (
        "signup",
        &[
            "signed up",
            "sign up",
            "joined",
            "registered",
            "registration",
        ],
    ),
    ("name", &["title", "label"]),
];

/// A word in its singular form ("categories" → "category", "sales" → "sale").
pub(crate) fn singular(word: &str) -> String {
    if word.len() > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if word.len() > 3
        && word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
    {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
    }
}

/// One word of the question.
#[derive(Debug, Clone)]
struct Token {
    /// Lower case, as written.
    word: String,
    /// Singular form, for matching.
    stem: String,
    /// Text that was quoted ('...' or "..."), original case.
    quoted: Option<String>,
}

fn tokenize(question: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = question.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' || c == '"' {
            let rest = &question[i + 1..];
            if let Some(end) = rest.find(c) {
                let text = &rest[..end];
                tokens.push(Token {
                    word: text.to_lowercase(),
                    stem: text.to_lowercase(),
                    quoted: Some(text.to_string()),
                });
                while chars.peek().is_some_and(|(j, _)| *j <= i + end + 1) {
                    chars.next();
                }
            }
            continue;
        }
        if c.is_alphanumeric() {
            let mut word = c.to_lowercase().to_string();
            while let Some((_, d)) = chars.peek().copied() {
                if d.is_alphanumeric() {
                    word.extend(d.to_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(Token {
                stem: singular(&word),
                word,
                quoted: None,
            });
        }
    }
    tokens
}

/// A phrase of the catalog's vocabulary and what it means.
#[derive(Debug, Clone)]
enum Meaning {
    Table(usize),
    Column(ColRef),
}

struct Vocabulary {
    /// (stemmed words, meaning), longest phrases first.
    phrases: Vec<(Vec<String>, Meaning)>,
    /// (stemmed words of a value, column, the value as stored)
    values: Vec<(Vec<String>, ColRef, String)>,
}

fn stems(text: &str) -> Vec<String> {
    tokenize(text).into_iter().map(|t| t.stem).collect()
}

fn synonyms_of(word: &str) -> Vec<String> {
    let mut out = vec![word.to_string()];
    for (canonical, others) in SYNONYMS {
        if *canonical == word {
            out.extend(others.iter().map(|s| s.to_string()));
        }
    }
    out
}

impl Vocabulary {
    fn new(catalog: &CatalogSummary) -> Self {
        let mut phrases = Vec::new();
        for (t, table) in catalog.tables.iter().enumerate() {
            let name = table.name.to_lowercase().replace('_', " ");
            for phrase in std::iter::once(name.clone()).chain(
                stems(&name)
                    .last()
                    .map(|w| synonyms_of(w))
                    .unwrap_or_default(),
            ) {
                phrases.push((stems(&phrase), Meaning::Table(t)));
            }
            for (c, column) in table.columns.iter().enumerate() {
                let col = ColRef {
                    table: t,
                    column: c,
                };
                let name = column.name.to_lowercase().replace('_', " ");
                let words = stems(&name);
                phrases.push((words.clone(), Meaning::Column(col)));
                // "customer segment", "product category": the table names the column.
                let table_word = singular(&table.name.to_lowercase());
                if words.first() != Some(&table_word) {
                    let mut qualified = vec![table_word];
                    qualified.extend(words.iter().cloned());
                    phrases.push((qualified, Meaning::Column(col)));
                }
                if words.len() == 1 {
                    phrases.push((vec![words[0].replace(' ', "")], Meaning::Column(col)));
                }
                // "unit price" is also "price"; "signup date" also "signup".
                let mut heads: Vec<&String> = Vec::new();
                if words.len() > 1 && words.last().is_some_and(|w| w != "id") {
                    heads.push(words.last().unwrap_or(&words[0]));
                    // The event a date is named after: "signup" for `signup_date`.
                    let temporal = column.data_type.is_temporal();
                    if words.len() == 2 && temporal && !catalog_has_table_word(catalog, &words[0]) {
                        heads.push(&words[0]);
                    }
                }
                if words.len() == 1 {
                    heads.push(&words[0]);
                }
                for head in heads {
                    for synonym in synonyms_of(head) {
                        phrases.push((stems(&synonym), Meaning::Column(col)));
                    }
                }
            }
        }
        phrases.sort_by_key(|(words, _)| std::cmp::Reverse(words.len()));
        let mut values = Vec::new();
        for (t, table) in catalog.tables.iter().enumerate() {
            for (c, column) in table.columns.iter().enumerate() {
                for value in &column.samples {
                    let words = stems(value);
                    if !words.is_empty() {
                        values.push((
                            words,
                            ColRef {
                                table: t,
                                column: c,
                            },
                            value.clone(),
                        ));
                    }
                }
            }
        }
        values.sort_by_key(|(words, _, _)| std::cmp::Reverse(words.len()));
        Self { phrases, values }
    }

    /// Every single word the vocabulary knows, for spelling correction.
    fn words(&self) -> Vec<&str> {
        let mut words: Vec<&str> = self
            .phrases
            .iter()
            .flat_map(|(w, _)| w.iter().map(String::as_str))
            .chain(
                self.values
                    .iter()
                    .flat_map(|(w, _, _)| w.iter().map(String::as_str)),
            )
            .collect();
        words.sort_unstable();
        words.dedup();
        words
    }
}

fn catalog_has_table_word(catalog: &CatalogSummary, word: &str) -> bool {
    catalog
        .tables
        .iter()
        .any(|t| singular(&t.name.to_lowercase()) == word)
}

const KEYWORDS: &[&str] = &[
    "total",
    "sum",
    "average",
    "avg",
    "mean",
    "maximum",
    "max",
    "minimum",
    "min",
    "how",
    "many",
    "much",
    "number",
    "count",
    "distinct",
    "unique",
    "different",
    "by",
    "per",
    "each",
    "across",
    "which",
    "what",
    "top",
    "best",
    "highest",
    "most",
    "largest",
    "biggest",
    "greatest",
    "bottom",
    "worst",
    "lowest",
    "least",
    "fewest",
    "smallest",
    "first",
    "last",
    "past",
    "previous",
    "day",
    "daily",
    "week",
    "weekly",
    "month",
    "monthly",
    "quarter",
    "quarterly",
    "year",
    "yearly",
    "annual",
    "annually",
    "list",
    "show",
    "display",
    "and",
    "days",
    "weeks",
    "months",
    "quarters",
    "years",
    "date",
];

/// Replaces misspelt words by the closest known word, when one is close enough.
fn correct_spelling(tokens: &mut [Token], vocabulary: &Vocabulary) {
    let known: Vec<&str> = vocabulary
        .words()
        .into_iter()
        .chain(KEYWORDS.iter().copied())
        .chain(STOPWORDS.iter().copied())
        .chain(MONTHS.iter().copied())
        .collect();
    for token in tokens.iter_mut().filter(|t| t.quoted.is_none()) {
        let len = token.word.chars().count();
        if len < 4 || token.word.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if known.contains(&token.word.as_str()) || known.contains(&token.stem.as_str()) {
            continue;
        }
        let allowed = if len <= 6 { 1 } else { 2 };
        let best = known
            .iter()
            .filter(|k| k.len() >= 3)
            .map(|k| {
                (
                    strsim::levenshtein(&token.stem, k).min(strsim::levenshtein(&token.word, k)),
                    *k,
                )
            })
            .min_by_key(|(d, _)| *d);
        if let Some((d, word)) = best.filter(|(d, _)| *d <= allowed) {
            tracing::debug!(from = %token.word, to = word, distance = d, "ask: spelling corrected");
            token.word = word.to_string();
            token.stem = singular(word);
        }
    }
}

/// Reads `question` into cues, in question order.
pub(crate) fn read(question: &str, catalog: &CatalogSummary) -> Result<Vec<Cue>, String> {
    let vocabulary = Vocabulary::new(catalog);
    let mut tokens = tokenize(question);
    correct_spelling(&mut tokens, &vocabulary);
    let mut cues = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (cue, used) = read_one(&tokens, i, &vocabulary)?;
        if let Some(cue) = cue {
            cues.push(cue);
        }
        i += used.max(1);
    }
    Ok(cues)
}

fn number(token: Option<&Token>) -> Option<u32> {
    token.and_then(|t| t.word.parse::<u32>().ok())
}

fn bucket(word: &str) -> Option<Bucket> {
    Some(match word {
        "day" | "days" | "daily" => Bucket::Day,
        "week" | "weeks" | "weekly" => Bucket::Week,
        "month" | "months" | "monthly" => Bucket::Month,
        "quarter" | "quarters" | "quarterly" => Bucket::Quarter,
        "year" | "years" | "yearly" | "annual" | "annually" => Bucket::Year,
        _ => return None,
    })
}

fn month(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| {
            *m == word
                || (word.len() >= 3 && m.starts_with(word) && word != "may" && word.len() <= 4)
        })
        .map(|i| i as u32 + 1)
}

/// The cue at `tokens[i]` and how many tokens it used.
fn read_one(
    tokens: &[Token],
    i: usize,
    vocabulary: &Vocabulary,
) -> Result<(Option<Cue>, usize), String> {
    let t = &tokens[i];
    let next = tokens.get(i + 1).map(|t| t.word.as_str());
    if let Some(quoted) = &t.quoted {
        let candidates: Vec<ColRef> = vocabulary
            .values
            .iter()
            .filter(|(_, _, v)| v.eq_ignore_ascii_case(quoted))
            .map(|(_, c, _)| *c)
            .collect();
        if candidates.is_empty() {
            return Err(format!("'{quoted}' is not a value I found in any column"));
        }
        let value = vocabulary
            .values
            .iter()
            .find(|(_, _, v)| v.eq_ignore_ascii_case(quoted))
            .map(|(_, _, v)| v.clone())
            .unwrap_or_else(|| quoted.clone());
        return Ok((Some(Cue::Value { candidates, value }), 1));
    }
    // Values seen in the data, longest first ("Small Business" before "Business").
    for (words, _, value) in &vocabulary.values {
        if matches_at(tokens, i, words) {
            let candidates = vocabulary
                .values
                .iter()
                .filter(|(w, _, v)| w == words && v == value)
                .map(|(_, c, _)| *c)
                .collect();
            return Ok((
                Some(Cue::Value {
                    candidates,
                    value: value.clone(),
                }),
                words.len(),
            ));
        }
    }
    let word = t.word.as_str();
    let cue = match word {
        "how" if matches!(next, Some("many")) => return Ok((Some(Cue::Count), 2)),
        "how" if matches!(next, Some("much")) => return Ok((Some(Cue::Agg(Agg::Sum)), 2)),
        "number" if matches!(next, Some("of")) => return Ok((Some(Cue::Count), 2)),
        "count" => Cue::Count,
        "total" | "sum" => Cue::Agg(Agg::Sum),
        "average" | "avg" | "mean" => Cue::Agg(Agg::Avg),
        "maximum" | "max" => Cue::Agg(Agg::Max),
        "minimum" | "min" => Cue::Agg(Agg::Min),
        "distinct" | "unique" | "different" => Cue::Distinct,
        "by" | "per" | "each" | "across" => Cue::GroupBy,
        "which" | "what" => Cue::Which,
        "and" => Cue::And,
        "list" | "show" | "display" => Cue::List,
        "top" | "best" | "highest" | "most" | "largest" | "biggest" | "greatest" | "first" => {
            return Ok(rank(true, tokens, i))
        }
        "bottom" | "worst" | "lowest" | "least" | "fewest" | "smallest" => {
            return Ok(rank(false, tokens, i))
        }
        "last" | "past" | "previous" | "recent" => {
            if let Some(n) = number(tokens.get(i + 1)) {
                if let Some(unit) = tokens.get(i + 2).and_then(|t| bucket(&t.word)) {
                    return Ok((Some(Cue::Last { n, unit }), 3));
                }
            }
            if let Some(unit) = next.and_then(bucket) {
                return Ok((Some(Cue::Last { n: 1, unit }), 2));
            }
            Cue::Unknown(word.to_string())
        }
        w if w.len() == 4 && w.chars().all(|c| c.is_ascii_digit()) => match w.parse::<i32>() {
            Ok(y) if (1900..=2100).contains(&y) => Cue::Year(y),
            _ => return Ok((None, 1)),
        },
        w if w.chars().all(|c| c.is_ascii_digit()) => {
            // "3 best products"
            if let Some(next) = tokens.get(i + 1) {
                if matches!(
                    next.word.as_str(),
                    "top" | "best" | "highest" | "most" | "largest" | "biggest"
                ) {
                    let n = w.parse().ok();
                    return Ok((Some(Cue::Rank { desc: true, n }), 2));
                }
                if matches!(
                    next.word.as_str(),
                    "bottom" | "worst" | "lowest" | "least" | "smallest"
                ) {
                    let n = w.parse().ok();
                    return Ok((Some(Cue::Rank { desc: false, n }), 2));
                }
            }
            return Ok((None, 1));
        }
        w => match (bucket(w), month(w)) {
            (Some(b), _) => Cue::Bucket(b),
            (None, Some(m)) => Cue::Month(m),
            _ => return Ok(concept(tokens, i, vocabulary)),
        },
    };
    Ok((Some(cue), 1))
}

fn rank(desc: bool, tokens: &[Token], i: usize) -> (Option<Cue>, usize) {
    match number(tokens.get(i + 1)) {
        Some(n) => (
            Some(Cue::Rank {
                desc,
                n: Some(n as usize),
            }),
            2,
        ),
        None => (Some(Cue::Rank { desc, n: None }), 1),
    }
}

fn matches_at(tokens: &[Token], i: usize, words: &[String]) -> bool {
    i + words.len() <= tokens.len()
        && words
            .iter()
            .zip(&tokens[i..])
            .all(|(w, t)| t.quoted.is_none() && (*w == t.stem || *w == t.word))
}

/// A table or column named at `tokens[i]`, or an unknown word.
fn concept(tokens: &[Token], i: usize, vocabulary: &Vocabulary) -> (Option<Cue>, usize) {
    let t = &tokens[i];
    let plural = t.word != t.stem;
    let mut found: Option<(usize, Vec<Meaning>)> = None;
    for (words, meaning) in &vocabulary.phrases {
        if found.as_ref().is_some_and(|(len, _)| *len > words.len()) {
            break;
        }
        if matches_at(tokens, i, words) {
            found
                .get_or_insert_with(|| (words.len(), Vec::new()))
                .1
                .push(meaning.clone());
        }
    }
    let Some((len, meanings)) = found else {
        if STOPWORDS.contains(&t.word.as_str()) {
            return (None, 1);
        }
        return (Some(Cue::Unknown(t.word.clone())), 1);
    };
    let plural = plural || (len > 1 && tokens[i + len - 1].word != tokens[i + len - 1].stem);
    // A table name wins over columns named like it ("customers" is the table, not
    // `sales.customer_id`).
    if let Some(Meaning::Table(table)) = meanings.iter().find(|m| matches!(m, Meaning::Table(_))) {
        return (
            Some(Cue::Table {
                table: *table,
                plural,
            }),
            len,
        );
    }
    let mut candidates: Vec<ColRef> = meanings
        .iter()
        .filter_map(|m| match m {
            Meaning::Column(c) => Some(*c),
            Meaning::Table(_) => None,
        })
        .collect();
    candidates.dedup();
    (Some(Cue::Column { candidates, plural }), len)
}
