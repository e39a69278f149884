//! Postgres' text COPY format, turned into CSV for arrow's decoder.
//!
//! In the text format a raw newline always ends a row and a raw delimiter always ends a
//! field; newlines, delimiters and backslashes inside values are backslash escapes
//! (`\n`, `\t`, `\\`, octal `\101`, hex `\x41`, ...), and `\N` (or the NULL option) is
//! NULL. Each complete row is rewritten as a CSV row with every value quoted and NULL as
//! an unquoted NUL byte, which no Postgres text value can contain.

use datafusion::error::{DataFusionError, Result};

/// The NULL marker in the CSV this produces (`^\x00$` for the decoder's null regex).
pub(crate) const CSV_NULL: &str = "\u{0}";

pub(crate) struct TextRows {
    pending: Vec<u8>,
    delimiter: u8,
    null: Vec<u8>,
}

impl TextRows {
    pub(crate) fn new(delimiter: u8, null: &str) -> Self {
        Self {
            pending: Vec::new(),
            delimiter,
            null: null.as_bytes().to_vec(),
        }
    }

    /// The complete rows of what arrived so far, as CSV; at the end, the rest too.
    pub(crate) fn feed(&mut self, data: &[u8], end: bool) -> Result<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let cut = if end {
            self.pending.len()
        } else {
            match self.pending.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => return Ok(Vec::new()),
            }
        };
        let complete: Vec<u8> = self.pending.drain(..cut).collect();
        let mut out = Vec::with_capacity(complete.len() + complete.len() / 4);
        for line in complete.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line == b"\\." {
                continue;
            }
            for (i, field) in line.split(|b| *b == self.delimiter).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if field == self.null.as_slice() {
                    out.extend_from_slice(CSV_NULL.as_bytes());
                } else {
                    out.push(b'"');
                    unescape_into(field, &mut out)?;
                    out.push(b'"');
                }
            }
            out.push(b'\n');
        }
        Ok(out)
    }
}

/// Resolves the backslash escapes of one field, doubling quotes for CSV.
fn unescape_into(field: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        let byte = if b != b'\\' {
            b
        } else {
            let Some(&e) = field.get(i) else {
                return Err(DataFusionError::Plan(
                    "COPY text data ends a value with a lone backslash".into(),
                ));
            };
            i += 1;
            match e {
                b'b' => 8,
                b'f' => 12,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 11,
                b'0'..=b'7' => {
                    let mut value = u32::from(e - b'0');
                    for _ in 0..2 {
                        match field.get(i) {
                            Some(d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    (value & 0xff) as u8
                }
                b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                    let mut value = 0u8;
                    for _ in 0..2 {
                        match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(d) => {
                                value = value * 16 + d as u8;
                                i += 1;
                            }
                            None => break,
                        }
                    }
                    value
                }
                other => other,
            }
        };
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TextRows;

    #[test]
    fn escapes_nulls_and_rows_split_across_messages() {
        let mut rows = TextRows::new(b'\t', "\\N");
        let first = rows
            .feed(b"1\ta\\tb\\nc\t\\N\n2\tsay \"hi\"\\\\", false)
            .unwrap();
        assert_eq!(first, b"\"1\",\"a\tb\nc\",\x00\n".to_vec());
        let rest = rows.feed(b"\t\\101\\x42\n\\.\n", true).unwrap();
        assert_eq!(rest, b"\"2\",\"say \"\"hi\"\"\\\",\"AB\"\n".to_vec());
        assert!(TextRows::new(b'\t', "\\N").feed(b"oops\\", true).is_err());
    }
}
