//! Page chunks of a snapshot: encoding, compression, the summary (totals
//! and groupings), and derived views (sort and sub-filter).
//!
//! A chunk is one page: the JSON array of the page's rows, exactly as the API
//! returns them, compressed with zstd. A warm page read therefore only
//! decompresses and splices; it never re-serializes a row.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{CedentId, CodeCache, TransactionId, TreatyId};
use crate::money::{Amount, Currency};
use crate::period::Period;
use crate::snapshot::{InputError, SnapshotId};
use crate::transaction::{LedgerRow, TxnStatus};

/// Rows per page.
pub const PAGE_SIZE: usize = 1_000;
/// Largest compressed chunk stored. DynamoDB's item limit is 400 KB for
/// the whole item; the rest is headroom for the key and attributes.
pub const CHUNK_BYTES_MAX: usize = 350 * 1024;
/// Largest decompressed page accepted when reading a chunk back; far above
/// a real page (about 200 bytes a row) and far below the 6 MB response limit.
pub const PAGE_JSON_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most pages one snapshot may have (10M rows): bounds every page walk.
pub const PAGES_MAX: u32 = 10_000;
/// zstd level 1: a page compresses about 5x, at twice the speed of level 3.
const ZSTD_LEVEL: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("a page compressed to {0} bytes, over the {CHUNK_BYTES_MAX}-byte chunk limit")]
    TooLarge(usize),
    #[error("the snapshot would have more than {PAGES_MAX} pages")]
    TooManyPages,
    #[error("a stored chunk is corrupt: {0}")]
    Corrupt(String),
}

/// One compressed page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub number: u32,
    pub rows: u32,
    pub bytes: Vec<u8>,
}

/// A row as the API writes it (DESIGN.md, API shapes).
#[derive(Serialize, Deserialize)]
struct WireRow<'a> {
    id: uuid::Uuid,
    #[serde(borrow)]
    treaty_id: Cow<'a, str>,
    #[serde(borrow)]
    cedent_id: Cow<'a, str>,
    #[serde(borrow)]
    accounting_period: Cow<'a, str>,
    txn_date: NaiveDate,
    #[serde(borrow)]
    amount: Cow<'a, str>,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    #[serde(borrow)]
    reference: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    row_version: i64,
}

/// Writes one row as the API's JSON object, field for field what `WireRow`
/// serializes (a test holds the two equal). Written by hand because it is
/// the hot loop of a cold search: no allocation per row. Codes, dates and
/// amounts hold no character JSON escapes; the free-text reference goes
/// through serde_json's string escaping.
fn write_row_json(out: &mut Vec<u8>, row: &LedgerRow) -> Result<(), ChunkError> {
    use chrono::Datelike as _;
    use std::io::Write as _;
    let mut id = uuid::Uuid::encode_buffer();
    let period = row.accounting_period;
    write!(
        out,
        "{{\"id\":\"{}\",\"treaty_id\":\"{}\",\"cedent_id\":\"{}\",\"accounting_period\":\"{:04}-{:02}\",\"txn_date\":\"{:04}-{:02}-{:02}\",\"amount\":\"{}\",\"currency\":\"{}\",\"reference\":",
        row.id.0.hyphenated().encode_lower(&mut id),
        row.treaty_id,
        row.cedent_id,
        period.year(),
        period.month(),
        row.txn_date.year(),
        row.txn_date.month(),
        row.txn_date.day(),
        row.amount,
        row.currency,
    )
    .map_err(|e| ChunkError::Corrupt(e.to_string()))?;
    serde_json::to_writer(&mut *out, &row.reference).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
    write!(out, ",\"status\":\"{}\",\"row_version\":{}}}", row.status, row.row_version)
        .map_err(|e| ChunkError::Corrupt(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
fn to_wire(row: &LedgerRow) -> WireRow<'_> {
    WireRow {
        id: row.id.0,
        treaty_id: Cow::Borrowed(row.treaty_id.as_str()),
        cedent_id: Cow::Borrowed(row.cedent_id.as_str()),
        accounting_period: Cow::Owned(row.accounting_period.to_string()),
        txn_date: row.txn_date,
        amount: Cow::Owned(row.amount.to_string()),
        currency: Cow::Borrowed(row.currency.as_str()),
        reference: Cow::Borrowed(&row.reference),
        status: Cow::Borrowed(row.status.as_str()),
        row_version: row.row_version,
    }
}

/// The codes of one page, parsed once each.
#[derive(Default)]
struct PageCodes {
    treaties: CodeCache<TreatyId>,
    cedents: CodeCache<CedentId>,
}

fn from_wire(row: WireRow<'_>, codes: &mut PageCodes) -> Result<LedgerRow, ChunkError> {
    let bad = |what: &str| ChunkError::Corrupt(format!("bad {what}"));
    Ok(LedgerRow {
        id: TransactionId(row.id),
        treaty_id: codes
            .treaties
            .get(&row.treaty_id, TreatyId::as_str, TreatyId::parse)
            .map_err(|_| bad("treaty_id"))?,
        cedent_id: codes
            .cedents
            .get(&row.cedent_id, CedentId::as_str, CedentId::parse)
            .map_err(|_| bad("cedent_id"))?,
        accounting_period: Period::parse(&row.accounting_period).map_err(|_| bad("accounting_period"))?,
        txn_date: row.txn_date,
        amount: Amount::parse(&row.amount).map_err(|_| bad("amount"))?,
        currency: Currency::parse(&row.currency).map_err(|_| bad("currency"))?,
        reference: row.reference.into_owned(),
        status: TxnStatus::parse(&row.status).map_err(|_| bad("status"))?,
        row_version: row.row_version,
    })
}

/// Decompresses a chunk to the JSON array of its rows.
///
/// # Errors
/// [`ChunkError::Corrupt`] when the bytes are not a chunk this code wrote.
pub fn page_json(chunk: &[u8]) -> Result<Vec<u8>, ChunkError> {
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(chunk).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
    let mut limited = std::io::Read::take(decoder, PAGE_JSON_BYTES_MAX as u64 + 1);
    std::io::Read::read_to_end(&mut limited, &mut out).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
    if out.len() > PAGE_JSON_BYTES_MAX {
        return Err(ChunkError::Corrupt("the page is larger than any page written".into()));
    }
    Ok(out)
}

/// Decodes a chunk back into rows (for derived views).
///
/// # Errors
/// [`ChunkError::Corrupt`] when the chunk or a row in it is not valid.
pub fn decode_rows(chunk: &[u8]) -> Result<Vec<LedgerRow>, ChunkError> {
    let json = page_json(chunk)?;
    let rows: Vec<WireRow<'_>> =
        serde_json::from_slice(&json).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
    let mut codes = PageCodes::default();
    rows.into_iter().map(|row| from_wire(row, &mut codes)).collect()
}

/// Count and sum of a set of rows in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    pub currency: String,
    pub count: u64,
    pub amount: String,
}

/// A group's count and sum in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTotal {
    pub key: String,
    pub currency: String,
    pub count: u64,
    pub amount: String,
}

/// What the meta item holds besides identity: totals per currency and the
/// groupings per cedent and per accounting period (each per currency: a sum
/// across currencies means nothing). Stored as JSON and returned as is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub totals: Vec<Total>,
    pub by_cedent: Vec<GroupTotal>,
    pub by_period: Vec<GroupTotal>,
}

/// Count and sum per (group key, currency). Looked up by borrowed key, so
/// the per-row path allocates only when a group first appears.
struct Tally<K>(BTreeMap<K, BTreeMap<Currency, (u64, Amount)>>);

impl<K: Ord + Clone + std::fmt::Display> Tally<K> {
    fn new() -> Self {
        Self(BTreeMap::new())
    }

    fn add(&mut self, key: &K, currency: Currency, amount: Amount) -> Result<(), ChunkError> {
        let per_currency = match self.0.get_mut(key) {
            Some(m) => m,
            None => self.0.entry(key.clone()).or_default(),
        };
        let entry = per_currency.entry(currency).or_insert((0, Amount::ZERO));
        entry.0 += 1;
        entry.1 = entry.1.checked_add(amount).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
        Ok(())
    }

    fn groups(self) -> Vec<GroupTotal> {
        self.0
            .into_iter()
            .flat_map(|(key, per_currency)| {
                let key = key.to_string();
                per_currency.into_iter().map(move |(currency, (count, amount))| GroupTotal {
                    key: key.clone(),
                    currency: currency.to_string(),
                    count,
                    amount: amount.to_string(),
                })
            })
            .collect()
    }
}

/// Turns a stream of rows into page chunks and a summary, a page at a time:
/// memory holds one page of JSON, never the whole result.
pub struct SnapshotBuilder {
    page_size: usize,
    page: Vec<u8>,
    rows_in_page: u32,
    pages_done: u32,
    row_count: u64,
    totals: BTreeMap<Currency, (u64, Amount)>,
    by_cedent: Tally<CedentId>,
    by_period: Tally<Period>,
}

impl Default for SnapshotBuilder {
    fn default() -> Self {
        Self::new(PAGE_SIZE)
    }
}

impl SnapshotBuilder {
    pub fn new(page_size: usize) -> Self {
        Self {
            page_size: page_size.max(1),
            page: Vec::with_capacity(256 * page_size.max(1)),
            rows_in_page: 0,
            pages_done: 0,
            row_count: 0,
            totals: BTreeMap::new(),
            by_cedent: Tally::new(),
            by_period: Tally::new(),
        }
    }

    /// Adds a row; returns the chunk of the page it completed, if any.
    ///
    /// # Errors
    /// When a page does not fit a chunk, the page limit is reached, or a sum
    /// leaves `NUMERIC(18,2)`.
    pub fn push(&mut self, row: &LedgerRow) -> Result<Option<Chunk>, ChunkError> {
        self.page.push(if self.rows_in_page == 0 { b'[' } else { b',' });
        write_row_json(&mut self.page, row)?;
        self.rows_in_page += 1;
        self.row_count += 1;
        let total = self.totals.entry(row.currency).or_insert((0, Amount::ZERO));
        total.0 += 1;
        total.1 = total.1.checked_add(row.amount).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
        self.by_cedent.add(&row.cedent_id, row.currency, row.amount)?;
        self.by_period.add(&row.accounting_period, row.currency, row.amount)?;
        if self.rows_in_page as usize == self.page_size {
            return self.seal().map(Some);
        }
        Ok(None)
    }

    fn seal(&mut self) -> Result<Chunk, ChunkError> {
        if self.rows_in_page == 0 {
            self.page.push(b'[');
        }
        self.page.push(b']');
        if self.pages_done >= PAGES_MAX {
            return Err(ChunkError::TooManyPages);
        }
        let bytes =
            zstd::bulk::compress(&self.page, ZSTD_LEVEL).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
        if bytes.len() > CHUNK_BYTES_MAX {
            return Err(ChunkError::TooLarge(bytes.len()));
        }
        let chunk = Chunk { number: self.pages_done, rows: self.rows_in_page, bytes };
        self.pages_done += 1;
        self.rows_in_page = 0;
        self.page.clear();
        Ok(chunk)
    }

    /// The last, partial page (or the one empty page of an empty result)
    /// and the totals. A snapshot always has at least page 0.
    ///
    /// # Errors
    /// As [`SnapshotBuilder::push`].
    pub fn finish(mut self) -> Result<(Option<Chunk>, Built), ChunkError> {
        let last = if self.rows_in_page > 0 || self.pages_done == 0 { Some(self.seal()?) } else { None };
        let summary = Summary {
            totals: self
                .totals
                .into_iter()
                .map(|(currency, (count, amount))| Total {
                    currency: currency.to_string(),
                    count,
                    amount: amount.to_string(),
                })
                .collect(),
            by_cedent: self.by_cedent.groups(),
            by_period: self.by_period.groups(),
        };
        Ok((last, Built { row_count: self.row_count, page_count: self.pages_done, summary }))
    }
}

/// What a finished builder reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub row_count: u64,
    pub page_count: u32,
    pub summary: Summary,
}

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
}

impl SortField {
    const ALL: [(&'static str, Self); 7] = [
        ("accounting_period", Self::AccountingPeriod),
        ("txn_date", Self::TxnDate),
        ("amount", Self::Amount),
        ("cedent_id", Self::CedentId),
        ("currency", Self::Currency),
        ("reference", Self::Reference),
        ("treaty_id", Self::TreatyId),
    ];

    fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, f)| *f == self).map_or("", |(n, _)| n)
    }
}

/// A sort and sub-filter applied to a snapshot. The identity view (no sort,
/// no sub-filter) is the snapshot itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewSpec {
    sort: Option<(SortField, bool)>,
    cedent_ids: BTreeSet<CedentId>,
    currency: Option<Currency>,
}

/// Longest query value accepted for a view parameter.
const VIEW_PARAM_LEN_MAX: usize = 2_048;

impl ViewSpec {
    /// Parses `sort=field:asc|desc`, `cedent_id=A[,B...]`, `currency=USD`.
    ///
    /// # Errors
    /// [`InputError`] naming the query parameter.
    pub fn parse(
        sort: Option<&str>,
        cedent_id: Option<&str>,
        currency: Option<&str>,
    ) -> Result<Self, InputError> {
        for (name, value) in [("sort", sort), ("cedent_id", cedent_id), ("currency", currency)] {
            if value.is_some_and(|v| v.len() > VIEW_PARAM_LEN_MAX) {
                return Err(InputError::new(
                    "invalid_query",
                    name,
                    format!("{name} is longer than {VIEW_PARAM_LEN_MAX} characters"),
                ));
            }
        }
        let sort = match sort.filter(|s| !s.is_empty()) {
            None => None,
            Some(spec) => {
                let (field, direction) = spec.split_once(':').unwrap_or((spec, "asc"));
                let field =
                    SortField::ALL.iter().find(|(name, _)| *name == field).map(|(_, f)| *f).ok_or_else(
                        || {
                            let names: Vec<&str> = SortField::ALL.iter().map(|(n, _)| *n).collect();
                            InputError::new(
                                "invalid_sort",
                                "sort",
                                format!("sort on one of: {}", names.join(", ")),
                            )
                        },
                    )?;
                let descending = match direction {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(InputError::new("invalid_sort", "sort", "the direction is asc or desc")),
                };
                Some((field, descending))
            }
        };
        let cedent_ids = cedent_id
            .map(|list| {
                // An empty value is no filter; otherwise every item is a code.
                list.split(',')
                    .filter(|_| !list.is_empty())
                    .map(|c| {
                        CedentId::parse(c)
                            .map_err(|e| InputError::new("invalid_cedent_id", "cedent_id", e.to_string()))
                    })
                    .collect::<Result<BTreeSet<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let currency = currency
            .map(|c| {
                Currency::parse_code(c)
                    .map_err(|e| InputError::new("invalid_currency", "currency", e.to_string()))
            })
            .transpose()?;
        Ok(Self { sort, cedent_ids, currency })
    }

    pub fn is_identity(&self) -> bool {
        self.sort.is_none() && self.cedent_ids.is_empty() && self.currency.is_none()
    }

    pub fn canonical(&self) -> String {
        let cedents: Vec<&str> = self.cedent_ids.iter().map(CedentId::as_str).collect();
        format!(
            "sort={};cedent_id={};currency={}",
            self.sort.map_or_else(String::new, |(f, d)| format!(
                "{}:{}",
                f.name(),
                if d { "desc" } else { "asc" }
            )),
            cedents.join(","),
            self.currency.map_or("", Currency::as_str),
        )
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

    pub fn keeps(&self, row: &LedgerRow) -> bool {
        (self.cedent_ids.is_empty() || self.cedent_ids.contains(&row.cedent_id))
            && self.currency.is_none_or(|c| c == row.currency)
    }

    /// Filters and sorts rows in place. Ties keep the snapshot's order (the
    /// primary key), so the result is the same on every run.
    pub fn apply(&self, rows: &mut Vec<LedgerRow>) {
        rows.retain(|r| self.keeps(r));
        let Some((field, descending)) = self.sort else { return };
        // Unstable (no buffer of half the rows, which a stable sort takes),
        // with the snapshot's own order, the primary key, breaking ties: the
        // same order a stable sort of the snapshot gives.
        rows.sort_unstable_by(|a, b| {
            let order = match field {
                SortField::AccountingPeriod => a.accounting_period.cmp(&b.accounting_period),
                SortField::TxnDate => a.txn_date.cmp(&b.txn_date),
                SortField::Amount => a.amount.cmp(&b.amount),
                SortField::CedentId => a.cedent_id.cmp(&b.cedent_id),
                SortField::Currency => a.currency.cmp(&b.currency),
                SortField::Reference => a.reference.cmp(&b.reference),
                SortField::TreatyId => a.treaty_id.cmp(&b.treaty_id),
            };
            let order = if descending { order.reverse() } else { order };
            order.then_with(|| {
                (&a.treaty_id, a.accounting_period, a.id).cmp(&(&b.treaty_id, b.accounting_period, b.id))
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(i: u32, cents: i64, cedent: &str, currency: &str) -> LedgerRow {
        LedgerRow {
            id: TransactionId(uuid::Uuid::from_u128(u128::from(i))),
            treaty_id: TreatyId::parse("TR-0001").unwrap_or_else(|_| unreachable!()),
            cedent_id: CedentId::parse(cedent).unwrap_or_else(|_| unreachable!()),
            accounting_period: Period::new(2024, 1 + i % 12).unwrap_or_else(|_| unreachable!()),
            txn_date: NaiveDate::from_ymd_opt(2024, 1 + i % 12, 1 + i % 28).unwrap_or_default(),
            amount: Amount::from_cents(cents),
            currency: Currency::parse(currency).unwrap_or_else(|_| unreachable!()),
            reference: format!("REF \"{i}\" \\ é"),
            status: TxnStatus::Open,
            row_version: 1,
        }
    }

    fn build(rows: &[LedgerRow], page_size: usize) -> Result<(Vec<Chunk>, Built), ChunkError> {
        let mut builder = SnapshotBuilder::new(page_size);
        let mut chunks = Vec::new();
        for r in rows {
            chunks.extend(builder.push(r)?);
        }
        let (last, built) = builder.finish()?;
        chunks.extend(last);
        Ok((chunks, built))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn pages_hold_every_row_once_in_order(n in 0u32..2_500, page_size in 1usize..700) {
            let rows: Vec<_> = (0..n).map(|i| row(i, i64::from(i) * 37 - 5_000, "CED-1", "USD")).collect();
            let (chunks, built) = build(&rows, page_size).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(built.row_count, u64::from(n));
            prop_assert_eq!(built.page_count as usize, chunks.len());
            prop_assert_eq!(chunks.len(), (n as usize).div_ceil(page_size).max(1));
            let mut back = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                prop_assert_eq!(c.number as usize, i);
                prop_assert!(c.bytes.len() <= CHUNK_BYTES_MAX);
                back.extend(decode_rows(&c.bytes).map_err(|e| TestCaseError::fail(e.to_string()))?);
            }
            prop_assert_eq!(&back, &rows);
            let sum: i64 = (0..n).map(|i| i64::from(i) * 37 - 5_000).sum();
            let expected = if n == 0 { vec![] } else { vec![Total { currency: "USD".into(), count: u64::from(n), amount: Amount::from_cents(sum).to_string() }] };
            prop_assert_eq!(built.summary.totals, expected);
        }
    }

    #[test]
    fn views_sort_across_pages_and_filter_exactly() -> Result<(), Box<dyn std::error::Error>> {
        let rows: Vec<_> = (0..3_000u32)
            .map(|i| {
                row(
                    i,
                    i64::from((i * 7_919) % 10_007),
                    if i % 3 == 0 { "CED-A" } else { "CED-B" },
                    if i % 5 == 0 { "EUR" } else { "USD" },
                )
            })
            .collect();
        let view = ViewSpec::parse(Some("amount:desc"), Some("ced-a"), Some("USD"))?;
        let mut viewed = rows.clone();
        view.apply(&mut viewed);
        let expected: Vec<_> =
            rows.iter().filter(|r| r.cedent_id.as_str() == "CED-A" && r.currency.as_str() == "USD").collect();
        assert_eq!(viewed.len(), expected.len());
        assert!(viewed.windows(2).all(|w| w[0].amount >= w[1].amount));
        let (chunks, built) = build(&viewed, 97)?;
        let mut back = Vec::new();
        for c in &chunks {
            back.extend(decode_rows(&c.bytes)?);
        }
        assert_eq!(back, viewed);
        assert_eq!(built.row_count as usize, expected.len());
        Ok(())
    }

    #[test]
    fn a_view_orders_ties_as_a_stable_sort_of_the_snapshot_does() -> Result<(), Box<dyn std::error::Error>> {
        // Many equal amounts and cedents: ties everywhere.
        let mut rows: Vec<_> = (0..2_000u32)
            .map(|i| row(i, i64::from(i % 7), if i % 2 == 0 { "CED-A" } else { "CED-B" }, "USD"))
            .collect();
        // A snapshot holds its rows in primary-key order.
        rows.sort_by(|a, b| {
            (&a.treaty_id, a.accounting_period, a.id).cmp(&(&b.treaty_id, b.accounting_period, b.id))
        });
        for (field, key) in [
            ("amount", (|r: &LedgerRow| r.amount.to_string()) as fn(&LedgerRow) -> String),
            ("cedent_id", |r: &LedgerRow| r.cedent_id.to_string()),
        ] {
            for direction in ["asc", "desc"] {
                let view = ViewSpec::parse(Some(&format!("{field}:{direction}")), None, None)?;
                let mut viewed = rows.clone();
                view.apply(&mut viewed);
                let mut stable = rows.clone();
                stable.sort_by(|a, b| {
                    let order = if field == "amount" { a.amount.cmp(&b.amount) } else { key(a).cmp(&key(b)) };
                    if direction == "desc" {
                        order.reverse()
                    } else {
                        order
                    }
                });
                assert_eq!(viewed, stable, "{field}:{direction}");
            }
        }
        Ok(())
    }

    #[test]
    fn bad_view_parameters_name_the_parameter() {
        for (sort, cedent, currency, field) in [
            (Some("bogus:asc"), None, None, "sort"),
            (Some("amount:up"), None, None, "sort"),
            (None, Some("CED 1"), None, "cedent_id"),
            (None, None, Some("XXX"), "currency"),
        ] {
            assert_eq!(ViewSpec::parse(sort, cedent, currency).map_err(|e| e.field), Err(field.to_owned()));
        }
        assert!(ViewSpec::parse(Some(""), Some(""), None).is_ok_and(|v| v.is_identity()));
        // The schema's enum: one spelling, no padding.
        for currency in [" ", "", "usd", " USD"] {
            assert!(ViewSpec::parse(None, None, Some(currency)).is_err(), "{currency:?}");
        }
        assert!(ViewSpec::parse(None, Some("CED-1,,CED-2"), None).is_err(), "an empty item");
    }

    #[test]
    fn the_hand_written_row_json_is_what_serde_writes() -> Result<(), Box<dyn std::error::Error>> {
        for i in [0_u32, 7, 11_111] {
            let r = row(i, -1_234_567, "CED-9", "EUR");
            let mut hand = Vec::new();
            write_row_json(&mut hand, &r)?;
            assert_eq!(String::from_utf8(hand)?, serde_json::to_string(&to_wire(&r))?);
        }
        Ok(())
    }

    #[test]
    fn a_corrupt_chunk_is_refused() {
        assert!(decode_rows(b"not zstd").is_err());
        let bomb = zstd::bulk::compress(&vec![b' '; PAGE_JSON_BYTES_MAX + 10], 3).unwrap_or_default();
        assert!(page_json(&bomb).is_err());
    }
}
