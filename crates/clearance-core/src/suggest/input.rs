//! What a suggestion request says: the check (amount, currency) and its
//! remittance advice, as JSON lines or as the CSV a bank or cedent sent.
//! Every limit is checked here, before the snapshot is read.

use crate::money::{Amount, Currency};
use crate::snapshot::InputError;
use crate::text::{is_amount_text, is_positive_amount_text, is_printable_text};
use crate::transaction::REFERENCE_LEN_MAX;

/// Most remittance lines one request names (JSON or CSV).
pub const REMITTANCE_LINES_MAX: usize = 10_000;
/// Largest remittance CSV accepted, in bytes.
pub const REMITTANCE_CSV_BYTES_MAX: usize = 1024 * 1024;

/// A remittance line as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct RemittanceInput {
    pub reference: String,
    pub amount: Option<String>,
}

/// A suggestion request as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct SuggestInput {
    pub amount: String,
    pub currency: String,
    pub remittance: Option<Vec<RemittanceInput>>,
    pub remittance_csv: Option<String>,
}

/// One line of remittance advice: a reference the payer quotes and,
/// optionally, the amount it pays against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemittanceLine {
    /// 1-based: the JSON item's position, or the CSV's data line (the
    /// header is line 0).
    pub line: u32,
    /// As sent, trimmed.
    pub reference: String,
    pub amount: Option<Amount>,
}

impl RemittanceLine {
    /// The reference as it is matched: trimmed, case folded.
    pub fn key(&self) -> String {
        reference_key(&self.reference)
    }
}

/// A reference as it is matched against the ledger's: spaces trimmed,
/// lower case, so `soa-2024q1-ced-001-0042 ` finds `SOA-2024Q1-CED-001-0042`.
pub fn reference_key(reference: &str) -> String {
    reference.trim_matches(' ').chars().flat_map(char::to_lowercase).collect()
}

/// A validated suggestion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestRequest {
    pub amount: Amount,
    pub currency: Currency,
    pub remittance: Vec<RemittanceLine>,
}

impl SuggestRequest {
    /// # Errors
    /// [`InputError`] with a stable code and the offending field.
    pub fn parse(input: &SuggestInput) -> Result<Self, InputError> {
        if !is_positive_amount_text(&input.amount) {
            return Err(InputError::new(
                "invalid_amount",
                "/check/amount",
                "the check amount is a positive decimal string: at most 16 digits, 2 decimals, no leading zero",
            ));
        }
        let amount = Amount::parse(&input.amount)
            .map_err(|e| InputError::new("invalid_amount", "/check/amount", e.to_string()))?;
        let currency = Currency::parse_code(&input.currency)
            .map_err(|e| InputError::new("invalid_currency", "/check/currency", e.to_string()))?;
        let remittance = match (&input.remittance, &input.remittance_csv) {
            (Some(_), Some(_)) => {
                return Err(InputError::new(
                    "remittance_conflict",
                    "/remittance_csv",
                    "send the remittance as JSON lines or as CSV, not both",
                ))
            }
            (Some(lines), None) => json_lines(lines)?,
            (None, Some(csv)) => csv_lines(csv)?,
            (None, None) => Vec::new(),
        };
        Ok(Self { amount, currency, remittance })
    }
}

fn too_many(field: &str, count: usize) -> InputError {
    InputError::new(
        "remittance_too_large",
        field,
        format!("{count} remittance lines is over the limit of {REMITTANCE_LINES_MAX}"),
    )
}

fn line(n: usize, reference: &str, amount: Option<&str>, field: &str) -> Result<RemittanceLine, InputError> {
    let reference = reference.trim_matches(' ');
    if !is_printable_text(reference, REFERENCE_LEN_MAX, false) {
        return Err(InputError::new(
            "invalid_reference",
            field.to_owned() + "/reference",
            format!("a reference is 1 to {REFERENCE_LEN_MAX} printable characters"),
        ));
    }
    let amount = match amount {
        None => None,
        Some(text) => {
            let invalid = |m: String| InputError::new("invalid_amount", field.to_owned() + "/amount", m);
            if !is_amount_text(text) {
                return Err(invalid(
                    "a remittance amount is a decimal string with at most 2 decimals".into(),
                ));
            }
            Some(Amount::parse(text).map_err(|e| invalid(e.to_string()))?)
        }
    };
    let line = u32::try_from(n).map_err(|_| too_many(field, n))?;
    Ok(RemittanceLine { line, reference: reference.to_owned(), amount })
}

fn json_lines(lines: &[RemittanceInput]) -> Result<Vec<RemittanceLine>, InputError> {
    if lines.len() > REMITTANCE_LINES_MAX {
        return Err(too_many("/remittance", lines.len()));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| line(i + 1, &l.reference, l.amount.as_deref(), &format!("/remittance/{i}")))
        .collect()
}

/// A remittance CSV: a header naming a `reference` column and optionally
/// an `amount` one (any case, any order; other columns are ignored, as
/// banks' files carry more), then one line per item. Blank lines are
/// skipped. Its content is refused as `invalid_csv` with the line, its
/// size as `remittance_too_large`.
fn csv_lines(text: &str) -> Result<Vec<RemittanceLine>, InputError> {
    const FIELD: &str = "/remittance_csv";
    if text.len() > REMITTANCE_CSV_BYTES_MAX {
        return Err(InputError::new(
            "remittance_too_large",
            FIELD,
            format!("the CSV is over the limit of {REMITTANCE_CSV_BYTES_MAX} bytes"),
        ));
    }
    let bad = |at: String, message: &str| InputError::new("invalid_csv", FIELD, format!("{at}: {message}"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| bad("the header".into(), &e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let reference_at = column("reference")
        .ok_or_else(|| bad("the header".into(), "names no reference column (reference[,amount])"))?;
    let amount_at = column("amount");
    let mut lines = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("line {}", i + 2), &e.to_string()))?;
        if lines.len() == REMITTANCE_LINES_MAX {
            return Err(too_many(FIELD, REMITTANCE_LINES_MAX + 1));
        }
        let reference = record.get(reference_at).unwrap_or_default();
        // An empty amount cell is a line without an amount.
        let amount = amount_at.and_then(|a| record.get(a)).filter(|a| !a.is_empty());
        let parsed =
            line(i + 1, reference, amount, FIELD).map_err(|e| bad(format!("line {}", i + 2), &e.message))?;
        lines.push(parsed);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(csv: &str) -> SuggestInput {
        SuggestInput {
            amount: "10.00".into(),
            currency: "USD".into(),
            remittance: None,
            remittance_csv: Some(csv.into()),
        }
    }

    #[test]
    fn a_csv_names_its_columns_and_every_line_is_checked() {
        let ok = SuggestRequest::parse(&input(
            "Date,Amount,Reference\n2024-01-02, 4.00 ,SOA-1\n\n2024-01-03,,soa-2\n",
        ));
        let lines = ok.map(|r| r.remittance).unwrap_or_default();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].line, lines[0].amount), (1, Some(Amount::from_cents(400))));
        assert_eq!((lines[1].reference.as_str(), lines[1].amount), ("soa-2", None));
        assert_eq!(lines[0].key(), "soa-1");
        let code = |csv: &str| SuggestRequest::parse(&input(csv)).err().map(|e| (e.code, e.message));
        assert!(code("amount\n1.00\n").is_some_and(|(c, m)| c == "invalid_csv" && m.contains("no reference")));
        assert!(code("reference,amount\nA,1.001\n")
            .is_some_and(|(c, m)| c == "invalid_csv" && m.contains("line 2")));
        assert!(code("reference,amount\nA,1,extra\n").is_some_and(|(c, _)| c == "invalid_csv"));
        assert!(code("reference\n\u{7}\n").is_some_and(|(c, _)| c == "invalid_csv"));
        let many = format!("reference\n{}", "A\n".repeat(REMITTANCE_LINES_MAX + 1));
        assert!(code(&many).is_some_and(|(c, _)| c == "remittance_too_large"));
        let exactly = format!("reference\n{}", "A\n".repeat(REMITTANCE_LINES_MAX));
        assert!(code(&exactly).is_none());
    }

    #[test]
    fn the_check_and_the_json_lines_are_checked() {
        let base = SuggestInput { amount: "10.00".into(), currency: "USD".into(), ..SuggestInput::default() };
        let code = |i: &SuggestInput| SuggestRequest::parse(i).err().map(|e| (e.code, e.field));
        assert_eq!(
            code(&SuggestInput { amount: "0".into(), ..base.clone() }).map(|c| c.0),
            Some("invalid_amount")
        );
        assert_eq!(
            code(&SuggestInput { amount: "1e3".into(), ..base.clone() }).map(|c| c.0),
            Some("invalid_amount")
        );
        assert_eq!(
            code(&SuggestInput { currency: "XXX".into(), ..base.clone() }).map(|c| c.0),
            Some("invalid_currency")
        );
        let lines = vec![
            RemittanceInput { reference: "A".into(), amount: Some("-5.00".into()) },
            RemittanceInput { reference: " ".into(), amount: None },
        ];
        assert_eq!(
            code(&SuggestInput { remittance: Some(lines.clone()), ..base.clone() }),
            Some(("invalid_reference", "/remittance/1/reference".into()))
        );
        let both = SuggestInput {
            remittance: Some(lines),
            remittance_csv: Some("reference\n".into()),
            ..base.clone()
        };
        assert_eq!(code(&both).map(|c| c.0), Some("remittance_conflict"));
        let many = vec![RemittanceInput { reference: "A".into(), amount: None }; REMITTANCE_LINES_MAX + 1];
        assert_eq!(
            code(&SuggestInput { remittance: Some(many), ..base }).map(|c| c.0),
            Some("remittance_too_large")
        );
    }
}
