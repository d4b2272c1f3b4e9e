//! Views of a snapshot: a filter (which rows it keeps) and a sort of up to
//! three keys. A view is built from the snapshot's chunks, never from the
//! ledger, and cached under an id derived from the snapshot and the view.
//!
//! The filter alone is also what a selection `{"all": true, "view": {...}}`
//! names: one predicate, [`ViewFilter::keeps`], decides both what a page
//! shows and what a clearance takes.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::ids::CedentId;
use crate::money::{Amount, Currency};
use crate::period::Period;
use crate::snapshot::{InputError, SnapshotId};
use crate::transaction::LedgerRow;

/// Most sort keys a view takes.
pub const SORT_KEYS_MAX: usize = 3;
/// Longest reference a view filters on (characters).
pub const REFERENCE_LEN_MAX: usize = 64;
/// Most cedents one view filters on.
pub const CEDENTS_MAX: usize = 100;
/// Longest query value accepted for any view parameter (bytes), before it
/// is parsed.
pub const VIEW_PARAM_LEN_MAX: usize = 2_048;
/// The filter parameters, in canonical order; with `sort`, the whole page
/// query.
pub const FILTER_PARAMS: [&str; 9] = [
    "cedent_id",
    "currency",
    "amount_min",
    "amount_max",
    "reference",
    "txn_date_from",
    "txn_date_to",
    "period_from",
    "period_to",
];

/// Fields a view may sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    AccountingPeriod,
    TxnDate,
    Amount,
    CedentId,
    Currency,
    Reference,
    TreatyId,
    Status,
}

impl SortField {
    const ALL: [(&'static str, Self); 8] = [
        ("accounting_period", Self::AccountingPeriod),
        ("txn_date", Self::TxnDate),
        ("amount", Self::Amount),
        ("cedent_id", Self::CedentId),
        ("currency", Self::Currency),
        ("reference", Self::Reference),
        ("treaty_id", Self::TreatyId),
        ("status", Self::Status),
    ];

    fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, f)| *f == self).map_or("", |(n, _)| n)
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().find(|(name, _)| *name == raw).map(|(_, f)| *f)
    }

    fn compare(self, a: &LedgerRow, b: &LedgerRow) -> Ordering {
        match self {
            Self::AccountingPeriod => a.accounting_period.cmp(&b.accounting_period),
            Self::TxnDate => a.txn_date.cmp(&b.txn_date),
            Self::Amount => a.amount.cmp(&b.amount),
            Self::CedentId => a.cedent_id.cmp(&b.cedent_id),
            Self::Currency => a.currency.cmp(&b.currency),
            Self::Reference => a.reference.cmp(&b.reference),
            Self::TreatyId => a.treaty_id.cmp(&b.treaty_id),
            Self::Status => a.status.as_str().cmp(b.status.as_str()),
        }
    }
}

/// A view's filter parameters as the page query or a selection's `view`
/// spells them, before validation. `None` is "no filter".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewFilterInput {
    pub cedent_id: Option<Vec<String>>,
    pub currency: Option<String>,
    pub amount_min: Option<String>,
    pub amount_max: Option<String>,
    pub reference: Option<String>,
    pub txn_date_from: Option<String>,
    pub txn_date_to: Option<String>,
    pub period_from: Option<String>,
    pub period_to: Option<String>,
}

/// Which rows of a snapshot a view keeps. Every bound is inclusive; a
/// range whose bounds cross keeps nothing (a well-defined, empty view).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewFilter {
    cedent_ids: BTreeSet<CedentId>,
    currency: Option<Currency>,
    amount_min: Option<Amount>,
    amount_max: Option<Amount>,
    /// Lower-cased: the match is case-insensitive.
    reference: Option<String>,
    txn_date_from: Option<NaiveDate>,
    txn_date_to: Option<NaiveDate>,
    period_from: Option<Period>,
    period_to: Option<Period>,
}

/// Parses one optional parameter with `parse`, naming `field` on failure.
fn optional<T>(
    raw: Option<&String>,
    field: String,
    code: &'static str,
    message: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, InputError> {
    raw.map(|v| parse(v).ok_or_else(|| InputError::new(code, field, message))).transpose()
}

impl ViewFilter {
    /// Validates the filter parameters; `prefix` goes before each parameter's
    /// name in an error's field (`""` for the query, `/selection/view/` for
    /// a body).
    ///
    /// # Errors
    /// [`InputError`] naming the parameter.
    pub fn parse(input: &ViewFilterInput, prefix: &str) -> Result<Self, InputError> {
        let field = |name: &str| format!("{prefix}{name}");
        let cedents = input.cedent_id.as_deref().unwrap_or(&[]);
        if cedents.len() > CEDENTS_MAX {
            return Err(InputError::new(
                "too_many_cedents",
                field("cedent_id"),
                format!("a view filters on at most {CEDENTS_MAX} cedents"),
            ));
        }
        let cedent_ids = cedents
            .iter()
            .map(|c| {
                CedentId::parse(c)
                    .map_err(|e| InputError::new("invalid_cedent_id", field("cedent_id"), e.to_string()))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let currency = input
            .currency
            .as_deref()
            .map(|c| {
                Currency::parse_code(c)
                    .map_err(|e| InputError::new("invalid_currency", field("currency"), e.to_string()))
            })
            .transpose()?;
        let amount = |raw: Option<&String>, name: &str| {
            optional(
                raw,
                field(name),
                "invalid_amount",
                "a decimal string: -?digits, at most 2 decimals",
                |v| crate::text::is_amount_text(v).then(|| Amount::parse(v).ok()).flatten(),
            )
        };
        let date = |raw: Option<&String>, name: &str| {
            optional(raw, field(name), "invalid_date", "a date written YYYY-MM-DD", crate::text::parse_date)
        };
        let period = |raw: Option<&String>, name: &str| {
            // Surrounding white space is ignored, as in a search's periods.
            optional(raw, field(name), "invalid_period", "a period written YYYY-MM", |v| {
                Period::parse(v.trim_ascii()).ok()
            })
        };
        let reference = optional(
            input.reference.as_ref(),
            field("reference"),
            "invalid_reference",
            &format!("1 to {REFERENCE_LEN_MAX} printable characters, not only spaces"),
            |v| crate::text::is_printable_text(v, REFERENCE_LEN_MAX, false).then(|| lower(v)),
        )?;
        Ok(Self {
            cedent_ids,
            currency,
            amount_min: amount(input.amount_min.as_ref(), "amount_min")?,
            amount_max: amount(input.amount_max.as_ref(), "amount_max")?,
            reference,
            txn_date_from: date(input.txn_date_from.as_ref(), "txn_date_from")?,
            txn_date_to: date(input.txn_date_to.as_ref(), "txn_date_to")?,
            period_from: period(input.period_from.as_ref(), "period_from")?,
            period_to: period(input.period_to.as_ref(), "period_to")?,
        })
    }

    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the view keeps `row`: every given bound holds.
    pub fn keeps(&self, row: &LedgerRow) -> bool {
        (self.cedent_ids.is_empty() || self.cedent_ids.contains(&row.cedent_id))
            && self.currency.is_none_or(|c| c == row.currency)
            && self.amount_min.is_none_or(|min| row.amount >= min)
            && self.amount_max.is_none_or(|max| row.amount <= max)
            && self.txn_date_from.is_none_or(|from| row.txn_date >= from)
            && self.txn_date_to.is_none_or(|to| row.txn_date <= to)
            && self.period_from.is_none_or(|from| row.accounting_period >= from)
            && self.period_to.is_none_or(|to| row.accounting_period <= to)
            && self.reference.as_deref().is_none_or(|needle| contains_caseless(&row.reference, needle))
    }

    /// The filter as canonical JSON (every parameter, in a fixed order):
    /// equal filters give equal text, whatever order the client used.
    fn canonical(&self) -> serde_json::Value {
        let cedents: Vec<&str> = self.cedent_ids.iter().map(CedentId::as_str).collect();
        let text = |v: Option<String>| v.map_or(serde_json::Value::Null, serde_json::Value::String);
        serde_json::json!([
            cedents,
            self.currency.map(Currency::as_str),
            text(self.amount_min.map(|a| a.to_string())),
            text(self.amount_max.map(|a| a.to_string())),
            self.reference,
            text(self.txn_date_from.map(|d| d.to_string())),
            text(self.txn_date_to.map(|d| d.to_string())),
            text(self.period_from.map(|p| p.to_string())),
            text(self.period_to.map(|p| p.to_string())),
        ])
    }
}

/// Text lower-cased a character at a time (no context rule such as a final
/// sigma) with the final sigma folded to σ, the same way on both sides of a
/// match: "ΟΔΟΣ", "οδος" and "οδoς" all hold "ος" and "ΟΣ".
fn lower(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).map(|c| if c == 'ς' { 'σ' } else { c }).collect()
}

/// Whether `haystack` contains `needle` (already [`lower`]), ignoring case.
/// ASCII text, the common case, is compared in place; other text is
/// lower-cased first.
fn contains_caseless(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    lower(haystack).contains(needle)
}

/// A filter and a sort applied to a snapshot. The identity view (no sort,
/// no filter) is the snapshot itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewSpec {
    sort: Vec<(SortField, bool)>,
    filter: ViewFilter,
}

impl ViewSpec {
    /// Parses `sort=f1[:asc|desc][,f2...]` (at most [`SORT_KEYS_MAX`] keys;
    /// an empty value is no sort) with a validated filter.
    ///
    /// # Errors
    /// [`InputError`] naming `sort`.
    pub fn parse(sort: Option<&str>, filter: ViewFilter) -> Result<Self, InputError> {
        let spec = sort.unwrap_or("");
        let keys: Vec<&str> = if spec.is_empty() { Vec::new() } else { spec.split(',').collect() };
        if keys.len() > SORT_KEYS_MAX {
            return Err(InputError::new(
                "invalid_sort",
                "sort",
                format!("sort on at most {SORT_KEYS_MAX} keys"),
            ));
        }
        let mut sort = Vec::with_capacity(keys.len());
        for key in keys {
            let (name, direction) = key.split_once(':').unwrap_or((key, "asc"));
            let field = SortField::parse(name).ok_or_else(|| {
                let names: Vec<&str> = SortField::ALL.iter().map(|(n, _)| *n).collect();
                InputError::new("invalid_sort", "sort", format!("sort on one of: {}", names.join(", ")))
            })?;
            let descending = match direction {
                "asc" => false,
                "desc" => true,
                _ => return Err(InputError::new("invalid_sort", "sort", "the direction is asc or desc")),
            };
            // A field named again could never decide an order: ignored.
            if !sort.iter().any(|(f, _)| *f == field) {
                sort.push((field, descending));
            }
        }
        Ok(Self { sort, filter })
    }

    /// The view of the snapshot that only filters (no sort).
    pub fn filtered(filter: ViewFilter) -> Self {
        Self { sort: Vec::new(), filter }
    }

    pub fn filter(&self) -> &ViewFilter {
        &self.filter
    }

    pub fn is_identity(&self) -> bool {
        self.sort.is_empty() && self.filter.is_identity()
    }

    pub fn canonical(&self) -> String {
        let sort: Vec<String> = self
            .sort
            .iter()
            .map(|(f, d)| format!("{}:{}", f.name(), if *d { "desc" } else { "asc" }))
            .collect();
        serde_json::json!({ "sort": sort, "filter": self.filter.canonical() }).to_string()
    }

    /// The id of this view of `snapshot`: derived from both, so a view is
    /// cached once per snapshot and never shared across snapshots.
    pub fn view_id(&self, snapshot: &SnapshotId) -> SnapshotId {
        let mut hasher = Sha256::new();
        hasher.update(b"view\0");
        hasher.update(snapshot.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(self.canonical().as_bytes());
        SnapshotId::from_digest(&hasher.finalize())
    }

    /// The positions of the rows the view keeps, in the view's order. Ties
    /// keep the snapshot's order (the position breaks them), so the result
    /// is a stable sort's and the same on every run; sorting positions, not
    /// rows, moves 4 bytes a step.
    pub fn order(&self, rows: &[LedgerRow]) -> Vec<u32> {
        let mut kept: Vec<u32> = (0..u32::try_from(rows.len()).unwrap_or(u32::MAX))
            .filter(|&i| self.filter.keeps(&rows[i as usize]))
            .collect();
        if !self.sort.is_empty() {
            kept.sort_unstable_by(|&a, &b| {
                let (ra, rb) = (&rows[a as usize], &rows[b as usize]);
                self.sort
                    .iter()
                    .map(|&(field, descending)| {
                        let order = field.compare(ra, rb);
                        if descending {
                            order.reverse()
                        } else {
                            order
                        }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
                    .then(a.cmp(&b))
            });
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TransactionId, TreatyId};
    use crate::transaction::TxnStatus;

    fn row(i: u32) -> LedgerRow {
        LedgerRow {
            id: TransactionId(uuid::Uuid::from_u128(u128::from(i))),
            treaty_id: TreatyId::parse("TR-0001").unwrap_or_else(|_| unreachable!()),
            cedent_id: CedentId::parse(["CED-A", "CED-B", "CED-C"][i as usize % 3])
                .unwrap_or_else(|_| unreachable!()),
            accounting_period: Period::new(2024, 1 + i % 12).unwrap_or_else(|_| unreachable!()),
            txn_date: NaiveDate::from_ymd_opt(2024, 1 + i % 12, 1 + i % 28).unwrap_or_default(),
            amount: Amount::from_cents(i64::from((i * 7_919) % 10_007) - 2_000),
            currency: Currency::parse(if i % 5 == 0 { "EUR" } else { "USD" })
                .unwrap_or_else(|_| unreachable!()),
            reference: format!("Inv-{i:05} Ünïcode"),
            status: if i % 4 == 0 { TxnStatus::Cleared } else { TxnStatus::Open },
            row_version: 1,
        }
    }

    fn input(pairs: &[(&str, &str)]) -> ViewFilterInput {
        let mut input = ViewFilterInput::default();
        for (name, value) in pairs {
            let v = Some((*value).to_owned());
            match *name {
                "cedent_id" => input.cedent_id = Some(value.split(',').map(str::to_owned).collect()),
                "currency" => input.currency = v,
                "amount_min" => input.amount_min = v,
                "amount_max" => input.amount_max = v,
                "reference" => input.reference = v,
                "txn_date_from" => input.txn_date_from = v,
                "txn_date_to" => input.txn_date_to = v,
                "period_from" => input.period_from = v,
                _ => input.period_to = v,
            }
        }
        input
    }

    fn view(sort: &str, pairs: &[(&str, &str)]) -> Result<ViewSpec, InputError> {
        ViewSpec::parse(Some(sort), ViewFilter::parse(&input(pairs), "")?)
    }

    #[test]
    fn each_filter_keeps_exactly_its_rows() -> Result<(), InputError> {
        let rows: Vec<_> = (0..3_000).map(row).collect();
        type Case<'a> = (&'a [(&'a str, &'a str)], fn(&LedgerRow) -> bool);
        let cases: [Case<'_>; 7] = [
            (&[("cedent_id", "CED-A,CED-C")], |r| r.cedent_id.as_str() != "CED-B"),
            (&[("currency", "EUR")], |r| r.currency.as_str() == "EUR"),
            (&[("amount_min", "-5.5"), ("amount_max", "20.00")], |r| {
                r.amount >= Amount::from_cents(-550) && r.amount <= Amount::from_cents(2_000)
            }),
            (&[("reference", "INV-0012")], |r| r.reference.starts_with("Inv-0012")),
            (&[("reference", "üNÏ")], |_| true),
            (&[("txn_date_from", "2024-03-05"), ("txn_date_to", "2024-06-30")], |r| {
                r.txn_date >= NaiveDate::from_ymd_opt(2024, 3, 5).unwrap_or_default()
                    && r.txn_date <= NaiveDate::from_ymd_opt(2024, 6, 30).unwrap_or_default()
            }),
            (&[("period_from", "2024-11"), ("period_to", "2024-12")], |r| r.accounting_period.month() >= 11),
        ];
        for (pairs, predicate) in cases {
            let kept = view("", pairs)?.order(&rows);
            let expected: Vec<u32> = (0..3_000).filter(|&i| predicate(&rows[i as usize])).collect();
            assert!(!expected.is_empty(), "{pairs:?}");
            assert_eq!(kept, expected, "{pairs:?}");
        }
        assert!(view("", &[("amount_min", "10"), ("amount_max", "9.99")])?.order(&rows).is_empty());
        assert_eq!(
            view("", &[("period_from", " \x0c2024-11\n")])?.canonical(),
            view("", &[("period_from", "2024-11")])?.canonical(),
            "white space around a period is ignored"
        );
        Ok(())
    }

    #[test]
    fn case_is_ignored_a_character_at_a_time_on_both_sides() {
        // str::to_lowercase writes a final sigma as ς; a needle of one Σ is σ.
        assert!(contains_caseless("ΟΔΟΣ 12", &lower("Σ")));
        assert!(contains_caseless("ΟΣΑ", &lower("ος")));
        assert!(contains_caseless("οδος", &lower("ΟΣ")));
        assert!(contains_caseless("SOA-2024Q1", &lower("q1")));
        assert!(!contains_caseless("SOA-2024Q1", &lower("q2")));
    }

    #[test]
    fn a_multi_key_sort_is_a_stable_sort_of_the_snapshot() -> Result<(), InputError> {
        let rows: Vec<_> = (0..2_000).map(row).collect();
        let spec = view("cedent_id:desc,currency,amount:desc", &[("period_from", "2024-03")])?;
        let mut expected: Vec<u32> =
            (0..2_000).filter(|&i| rows[i as usize].accounting_period.month() >= 3).collect();
        expected.sort_by(|&a, &b| {
            let (a, b) = (&rows[a as usize], &rows[b as usize]);
            b.cedent_id.cmp(&a.cedent_id).then(a.currency.cmp(&b.currency)).then(b.amount.cmp(&a.amount))
        });
        assert_eq!(spec.order(&rows), expected);
        Ok(())
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let long = "x".repeat(REFERENCE_LEN_MAX + 1);
        for (pairs, field) in [
            (vec![("cedent_id", "CED 1")], "cedent_id"),
            (vec![("cedent_id", "CED-1,,CED-2")], "cedent_id"),
            (vec![("currency", "usd")], "currency"),
            (vec![("amount_min", "1.234")], "amount_min"),
            (vec![("amount_max", "1e3")], "amount_max"),
            (vec![("amount_max", "007")], "amount_max"),
            (vec![("reference", long.as_str())], "reference"),
            (vec![("reference", "  ")], "reference"),
            (vec![("reference", "a\u{7}")], "reference"),
            (vec![("txn_date_from", "2024-02-30")], "txn_date_from"),
            (vec![("txn_date_to", "2024-2-3")], "txn_date_to"),
            (vec![("period_from", "2024-13")], "period_from"),
            (vec![("period_to", "24-01")], "period_to"),
        ] {
            let got = ViewFilter::parse(&input(&pairs), "/selection/view/").map(|_| ());
            assert_eq!(got.map_err(|e| e.field), Err(format!("/selection/view/{field}")), "{pairs:?}");
        }
        for sort in ["bogus", "amount:up", "amount,status,currency,reference", "amount,"] {
            assert_eq!(
                ViewSpec::parse(Some(sort), ViewFilter::default()).map_err(|e| e.field),
                Err("sort".to_owned()),
                "{sort}"
            );
        }
        assert!(ViewSpec::parse(Some(""), ViewFilter::default()).is_ok_and(|v| v.is_identity()));
        assert_eq!(
            ViewSpec::parse(Some("amount,amount:desc"), ViewFilter::default()).map(|v| v.canonical()),
            ViewSpec::parse(Some("amount"), ViewFilter::default()).map(|v| v.canonical()),
        );
    }

    #[test]
    fn equal_views_share_an_id_whatever_the_spelling() -> Result<(), InputError> {
        let snapshot = SnapshotId::from_digest(&[7; 32]);
        let a = view("amount", &[("cedent_id", "CED-B,CED-A"), ("reference", "ABC")])?;
        let b = view("amount:asc", &[("reference", "abc"), ("cedent_id", "CED-A,CED-B")])?;
        assert_eq!(a.view_id(&snapshot), b.view_id(&snapshot));
        assert_ne!(a.view_id(&snapshot), view("amount:desc", &[])?.view_id(&snapshot));
        Ok(())
    }
}
