//! Page chunks of a snapshot: encoding, compression, and the summary
//! (totals, groupings, and what a selection of every open row would take).
//! Views over the chunks are in [`crate::views`].
//!
//! A chunk is one page: the JSON array of the page's rows, exactly as the API
//! returns them, compressed with zstd. A warm page read therefore only
//! decompresses and splices; it never re-serializes a row.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ids::{CedentId, CodeCache, TransactionId, TreatyId};
use crate::money::{Amount, Currency};
use crate::period::Period;
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
    /// Absent in metas written before it existed: readers then count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenRows>,
    /// The closed accounting periods of the search's treaties and range
    /// (ADR 0015); none in metas written before they existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed_periods: Vec<crate::closes::ClosedPeriod>,
}

/// Ids of rows that are not open a summary names (the rest are counted).
pub const NOT_OPEN_IDS_SHOWN: usize = 100;

/// What a selection of every open row takes (the open rows' totals and
/// treaties) and what it leaves out (the rows not open: their count and
/// the first [`NOT_OPEN_IDS_SHOWN`] ids in the snapshot's order).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OpenRows {
    pub totals: Vec<Total>,
    pub treaties: Vec<String>,
    pub not_open_count: u64,
    pub not_open_ids: Vec<uuid::Uuid>,
    /// The open rows' sum left `NUMERIC(18,2)`: a selection of them is
    /// refused as out of range (the totals are then partial).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflow: bool,
}

/// Count and sum per currency.
#[derive(Default)]
pub struct CurrencyTotals(BTreeMap<Currency, (u64, Amount)>);

impl CurrencyTotals {
    /// # Errors
    /// When the sum leaves `NUMERIC(18,2)`.
    pub fn add(&mut self, currency: Currency, amount: Amount) -> Result<(), ChunkError> {
        let total = self.0.entry(currency).or_insert((0, Amount::ZERO));
        total.0 += 1;
        total.1 = total.1.checked_add(amount).map_err(|e| ChunkError::Corrupt(e.to_string()))?;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.0.values().map(|(n, _)| n).sum()
    }

    pub fn into_totals(self) -> Vec<Total> {
        self.0
            .into_iter()
            .map(|(currency, (count, amount))| Total {
                currency: currency.to_string(),
                count,
                amount: amount.to_string(),
            })
            .collect()
    }
}

/// Tallies what [`OpenRows`] reports, a row at a time.
#[derive(Default)]
struct OpenTally {
    totals: CurrencyTotals,
    treaties: BTreeSet<crate::ids::TreatyId>,
    not_open_count: u64,
    not_open_ids: Vec<uuid::Uuid>,
    overflow: bool,
}

impl OpenTally {
    /// Never fails the build: a sum of open rows out of range is recorded,
    /// and a selection of them refused, as the resolver refuses it.
    fn add(&mut self, row: &LedgerRow) {
        if row.status == crate::transaction::TxnStatus::Open {
            if !self.treaties.contains(&row.treaty_id) {
                self.treaties.insert(row.treaty_id.clone());
            }
            self.overflow |= self.totals.add(row.currency, row.amount).is_err();
            return;
        }
        self.not_open_count += 1;
        if self.not_open_ids.len() < NOT_OPEN_IDS_SHOWN {
            self.not_open_ids.push(row.id.0);
        }
    }

    fn finish(self) -> OpenRows {
        OpenRows {
            totals: self.totals.into_totals(),
            treaties: self.treaties.into_iter().map(|t| t.to_string()).collect(),
            not_open_count: self.not_open_count,
            not_open_ids: self.not_open_ids,
            overflow: self.overflow,
        }
    }
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
    totals: CurrencyTotals,
    by_cedent: Tally<CedentId>,
    by_period: Tally<Period>,
    open: OpenTally,
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
            totals: CurrencyTotals::default(),
            by_cedent: Tally::new(),
            by_period: Tally::new(),
            open: OpenTally::default(),
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
        self.totals.add(row.currency, row.amount)?;
        self.open.add(row);
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
            totals: self.totals.into_totals(),
            by_cedent: self.by_cedent.groups(),
            by_period: self.by_period.groups(),
            open: Some(self.open.finish()),
            closed_periods: Vec::new(),
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
