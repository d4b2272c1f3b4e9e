//! Clearing against a check: the validated request and the journal posting
//! it books (groundwork of the write path; the guard lives in PostgreSQL).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::ids::{TransactionId, TreatyId};
use crate::money::{Amount, Currency};
use crate::snapshot::{InputError, SnapshotId, VersionToken};
use crate::views::{ViewFilter, ViewFilterInput};

/// Most ids one selection may name (explicit ids or exceptions).
pub const SELECTION_IDS_MAX: usize = 100_000;
/// Longest check number accepted.
pub const CHECK_NUMBER_LEN_MAX: usize = 64;

/// Which rows of the snapshot a clearance takes: named ids, or every open
/// row of a view (the whole snapshot when the view filters nothing) but the
/// exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Ids(BTreeSet<TransactionId>),
    AllExcept { except: BTreeSet<TransactionId>, view: ViewFilter },
}

impl Selection {
    /// Validates a selection as the wire spelled it: `{"ids": [...]}` or
    /// `{"all": true, "view": {...}, "except": [...]}`.
    ///
    /// # Errors
    /// [`InputError`] with the JSON pointer of the field.
    pub fn parse(
        ids: Option<&[String]>,
        all: Option<bool>,
        except: Option<&[String]>,
        view: Option<&ViewFilterInput>,
    ) -> Result<Self, InputError> {
        match (ids, all, except, view) {
            (Some(ids), None, None, None) => {
                if ids.is_empty() {
                    return Err(InputError::new(
                        "empty_selection",
                        "/selection/ids",
                        "select at least one transaction",
                    ));
                }
                Ok(Self::Ids(id_set(ids, "/selection/ids")?))
            }
            (None, Some(true), except, view) => Ok(Self::AllExcept {
                except: id_set(except.unwrap_or(&[]), "/selection/except")?,
                view: view.map(|v| ViewFilter::parse(v, "/selection/view/")).transpose()?.unwrap_or_default(),
            }),
            _ => Err(InputError::new(
                "invalid_selection",
                "/selection",
                "the selection is either {\"ids\": [...]} or {\"all\": true, \"view\": {...}, \"except\": [...]}",
            )),
        }
    }

    /// The ids the selection names: its rows, or its exceptions.
    pub fn named(&self) -> &BTreeSet<TransactionId> {
        match self {
            Self::Ids(ids) | Self::AllExcept { except: ids, .. } => ids,
        }
    }
}

/// The check (payment) a selection is cleared against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub number: String,
    pub amount: Amount,
    pub currency: Currency,
    pub received_on: NaiveDate,
}

/// A clearance request as the wire spelled it, before validation.
#[derive(Debug, Clone, Default)]
pub struct ClearanceInput {
    pub snapshot_id: String,
    pub version_token: String,
    pub ids: Option<Vec<String>>,
    pub all: Option<bool>,
    pub except: Option<Vec<String>>,
    pub view: Option<ViewFilterInput>,
    pub check_number: String,
    pub check_amount: String,
    pub check_currency: String,
    pub received_on: String,
    pub allow_difference: bool,
    pub overpayment_to_unapplied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearanceRequest {
    pub snapshot_id: SnapshotId,
    /// As the client sent it (shaped like a token): only the spelling the
    /// service issued for the snapshot matches it.
    pub version_token: String,
    pub selection: Selection,
    pub check: Check,
    /// What the request says about a difference (the tolerance decides).
    pub consent: crate::tolerance::DifferenceConsent,
}

fn id_set(raw: &[String], field: &str) -> Result<BTreeSet<TransactionId>, InputError> {
    if raw.len() > SELECTION_IDS_MAX {
        return Err(InputError::new(
            "too_many_ids",
            field,
            format!("a selection names at most {SELECTION_IDS_MAX} ids"),
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, text) in raw.iter().enumerate() {
        let id = crate::text::parse_uuid(text).ok_or_else(|| {
            InputError::new(
                "invalid_id",
                format!("{field}/{i}"),
                "a transaction id is a lower-case hyphenated UUID",
            )
        })?;
        if !ids.insert(TransactionId(id)) {
            return Err(InputError::new("duplicate_id", format!("{field}/{i}"), "each id may appear once"));
        }
    }
    Ok(ids)
}

impl ClearanceRequest {
    /// Validates a clearance request.
    ///
    /// # Errors
    /// The first [`InputError`] found, with the JSON pointer of its field.
    pub fn parse(input: &ClearanceInput) -> Result<Self, InputError> {
        let snapshot_id = SnapshotId::parse(&input.snapshot_id)
            .map_err(|e| InputError { field: "/snapshot_id".into(), ..e })?;
        VersionToken::check_shape(&input.version_token)
            .map_err(|e| InputError::new("invalid_version_token", "/version_token", e.to_string()))?;
        let version_token = input.version_token.clone();
        let selection =
            Selection::parse(input.ids.as_deref(), input.all, input.except.as_deref(), input.view.as_ref())?;
        if !crate::text::is_printable_text(&input.check_number, CHECK_NUMBER_LEN_MAX, false) {
            return Err(InputError::new(
                "invalid_check_number",
                "/check/number",
                format!("the check number is 1 to {CHECK_NUMBER_LEN_MAX} printable characters"),
            ));
        }
        let number = input.check_number.trim_matches(' ');
        if !crate::text::is_positive_amount_text(&input.check_amount) {
            return Err(InputError::new(
                "invalid_amount",
                "/check/amount",
                "the check amount is a positive decimal string: at most 16 digits, 2 decimals, no leading zero",
            ));
        }
        let amount = Amount::parse(&input.check_amount)
            .map_err(|e| InputError::new("invalid_amount", "/check/amount", e.to_string()))?;
        let currency = Currency::parse_code(&input.check_currency)
            .map_err(|e| InputError::new("invalid_currency", "/check/currency", e.to_string()))?;
        let received_on = crate::text::parse_date(&input.received_on).ok_or_else(|| {
            InputError::new("invalid_date", "/check/received_on", "a date written YYYY-MM-DD")
        })?;
        Ok(Self {
            snapshot_id,
            version_token,
            selection,
            check: Check { number: number.to_owned(), amount, currency, received_on },
            consent: crate::tolerance::DifferenceConsent {
                allow_difference: input.allow_difference,
                overpayment_to_unapplied: input.overpayment_to_unapplied,
            },
        })
    }
}

/// Longest reversal reason accepted.
pub const REVERSAL_REASON_LEN_MAX: usize = 500;

/// Why a clearance is reversed: mandatory, 1 to 500 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalReason(String);

impl ReversalReason {
    /// # Errors
    /// [`InputError`] `invalid_reason` on `/reason`.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim_matches([' ', '\n']);
        if !crate::text::is_printable_text(raw, REVERSAL_REASON_LEN_MAX, true) {
            return Err(InputError::new(
                "invalid_reason",
                "/reason",
                format!("a reversal needs a reason of 1 to {REVERSAL_REASON_LEN_MAX} printable characters"),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of the clearance a request posts: derived from the operator and
/// the idempotency key, so a retried request names the same clearance.
pub fn clearance_id_for(operator: &str, idempotency_key: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_a7a0_5c1e_4a7e_9c1e_a7a0_0000_0001);
    Uuid::new_v5(&NAMESPACE, format!("clearance\n{operator}\n{idempotency_key}").as_bytes())
}

/// The id of the reversal a request posts, derived like [`clearance_id_for`].
pub fn reversal_id_for(operator: &str, idempotency_key: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_a7a0_5c1e_4a7e_9c1e_a7a0_0000_0002);
    Uuid::new_v5(&NAMESPACE, format!("reversal\n{operator}\n{idempotency_key}").as_bytes())
}

/// A selected row as the snapshot recorded it: what the guard compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRowRef {
    pub id: Uuid,
    pub accounting_period: NaiveDate,
    pub row_version: i64,
}

/// Who posts, from which snapshot, under which idempotency key (audit).
#[derive(Debug, Clone)]
pub struct ClearanceHeader {
    pub clearance_id: Uuid,
    pub operator_id: String,
    pub snapshot_id: String,
    pub snapshot_filter: String,
    pub version_token: String,
    pub idempotency_key: String,
    /// The fingerprint of the request that posts it
    /// ([`crate::idempotency::request_hash`]), kept with the clearance so
    /// the key answers only this request, forever. Empty for a job planned
    /// before fingerprints were kept.
    pub request_hash: String,
}

/// Who reverses which clearance, why, under which idempotency key.
#[derive(Debug, Clone)]
pub struct ReversalHeader {
    pub reversal_id: Uuid,
    pub clearance_id: Uuid,
    pub reason: ReversalReason,
    pub operator_id: String,
    pub idempotency_key: String,
    /// The fingerprint of the reversal request.
    pub request_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearanceState {
    Posted,
    Reversed,
}

impl ClearanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Posted => "posted",
            Self::Reversed => "reversed",
        }
    }
}

/// A reversal as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRecord {
    pub reversal_id: Uuid,
    pub reason: String,
    pub operator_id: String,
    pub created_at: DateTime<Utc>,
}

/// A clearance as the ledger holds it: header, totals, journal and, once
/// reversed, its reversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearanceRecord {
    pub clearance_id: Uuid,
    pub treaty_id: TreatyId,
    pub check: Check,
    pub row_count: u32,
    pub cleared_total: Amount,
    pub difference: Amount,
    pub operator_id: String,
    pub snapshot_id: String,
    pub snapshot_filter: String,
    pub version_token: String,
    pub created_at: DateTime<Utc>,
    /// The clearance's own posting (the reversal posts the mirror image).
    pub journal: Vec<JournalLine>,
    pub reversal: Option<ReversalRecord>,
}

impl ClearanceRecord {
    pub fn state(&self) -> ClearanceState {
        if self.reversal.is_some() {
            ClearanceState::Reversed
        } else {
            ClearanceState::Posted
        }
    }
}

/// Ledger accounts a clearance posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Account {
    Cash,
    Receivable,
    UnappliedCash,
}

impl Account {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cash => "cash",
            Self::Receivable => "receivable",
            Self::UnappliedCash => "unapplied_cash",
        }
    }

    /// The account a ledger row names; `None` for an unknown name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Cash, Self::Receivable, Self::UnappliedCash].into_iter().find(|a| a.as_str() == raw)
    }
}

/// One journal line: exactly one of debit and credit is non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLine {
    pub account: Account,
    pub debit: Amount,
    pub credit: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostingError {
    #[error("the selected rows are in {found}, the check in {check}")]
    CurrencyMismatch { check: Currency, found: Currency },
    #[error("the selected total {selected} differs from the check amount {check}")]
    AmountMismatch { selected: Amount, check: Amount },
    #[error("an amount left the ledger's range")]
    Range,
    /// A difference beyond the currency's tolerance that the request may
    /// not book: a short payment, or an overpayment not sent to unapplied
    /// cash explicitly.
    #[error("the difference {difference} is beyond the tolerance of {bound}")]
    DifferenceOutOfTolerance { difference: Amount, bound: Amount },
}

/// The balanced posting of a clearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub cleared_total: Amount,
    /// check amount - cleared total, booked to unapplied cash.
    pub difference: Amount,
    pub lines: Vec<JournalLine>,
}

fn line(account: Account, signed: Amount, debit_when_positive: bool) -> Option<JournalLine> {
    let value = signed.as_decimal();
    if value.is_zero() {
        return None;
    }
    let magnitude = Amount::from_decimal(value.abs()).ok()?;
    let debit = value.is_sign_positive() == debit_when_positive;
    Some(if debit {
        JournalLine { account, debit: magnitude, credit: Amount::ZERO }
    } else {
        JournalLine { account, debit: Amount::ZERO, credit: magnitude }
    })
}

impl Posting {
    /// Plans the posting of `rows` (amount, currency) cleared against `check`:
    /// debit cash with the check, credit receivables with the rows, and the
    /// difference, when allowed, to unapplied cash.
    ///
    /// # Errors
    /// [`PostingError`] on a currency or (unallowed) amount mismatch.
    pub fn plan(
        check: &Check,
        rows: impl IntoIterator<Item = (Amount, Currency)>,
        allow_difference: bool,
    ) -> Result<Self, PostingError> {
        let mut total = Amount::ZERO;
        for (amount, currency) in rows {
            if currency != check.currency {
                return Err(PostingError::CurrencyMismatch { check: check.currency, found: currency });
            }
            total = total.checked_add(amount).map_err(|_| PostingError::Range)?;
        }
        Self::for_total(check, total, allow_difference)
    }

    /// Plans the posting of rows totalling `total` (in the check's currency).
    ///
    /// # Errors
    /// [`PostingError`] on an (unallowed) amount mismatch or out of range.
    pub fn for_total(check: &Check, total: Amount, allow_difference: bool) -> Result<Self, PostingError> {
        let difference = Amount::from_decimal(check.amount.as_decimal() - total.as_decimal())
            .map_err(|_| PostingError::Range)?;
        if difference != Amount::ZERO && !allow_difference {
            return Err(PostingError::AmountMismatch { selected: total, check: check.amount });
        }
        let lines: Vec<JournalLine> = [
            line(Account::Cash, check.amount, true),
            line(Account::Receivable, total, false),
            line(Account::UnappliedCash, difference, false),
        ]
        .into_iter()
        .flatten()
        .collect();
        let posting = Self { cleared_total: total, difference, lines };
        assert!(posting.balances(), "a clearance posting must balance");
        Ok(posting)
    }

    /// The reversal: every line with debit and credit swapped.
    pub fn reversed(&self) -> Vec<JournalLine> {
        self.lines
            .iter()
            .map(|l| JournalLine { account: l.account, debit: l.credit, credit: l.debit })
            .collect()
    }

    pub fn balances(&self) -> bool {
        let debits: rust_decimal::Decimal = self.lines.iter().map(|l| l.debit.as_decimal()).sum();
        let credits: rust_decimal::Decimal = self.lines.iter().map(|l| l.credit.as_decimal()).sum();
        debits == credits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap_or_else(|_| unreachable!())
    }

    fn check(cents: i64) -> Check {
        Check {
            number: "CHK-1".into(),
            amount: Amount::from_cents(cents),
            currency: usd(),
            received_on: NaiveDate::default(),
        }
    }

    fn input() -> ClearanceInput {
        ClearanceInput {
            snapshot_id: "a".repeat(64),
            version_token: VersionToken::new([]).to_string(),
            ids: Some(vec![uuid::Uuid::from_u128(1).to_string()]),
            check_number: "CHK-1".into(),
            check_amount: "10.00".into(),
            check_currency: "USD".into(),
            received_on: "2024-05-31".into(),
            ..ClearanceInput::default()
        }
    }

    #[test]
    fn bad_requests_name_their_field() {
        let one = uuid::Uuid::from_u128(1).to_string();
        let cases: [(&str, &str, ClearanceInput); 8] = [
            (
                "duplicate_id",
                "/selection/ids/1",
                ClearanceInput { ids: Some(vec![one.clone(), one.clone()]), ..input() },
            ),
            ("empty_selection", "/selection/ids", ClearanceInput { ids: Some(vec![]), ..input() }),
            ("invalid_selection", "/selection", ClearanceInput { all: Some(true), ..input() }),
            ("invalid_amount", "/check/amount", ClearanceInput { check_amount: "-5.00".into(), ..input() }),
            ("invalid_amount", "/check/amount", ClearanceInput { check_amount: "5.001".into(), ..input() }),
            (
                "invalid_currency",
                "/check/currency",
                ClearanceInput { check_currency: "ABC".into(), ..input() },
            ),
            (
                "invalid_version_token",
                "/version_token",
                ClearanceInput { version_token: "v9.00".into(), ..input() },
            ),
            (
                "invalid_date",
                "/check/received_on",
                ClearanceInput { received_on: "2024-02-30".into(), ..input() },
            ),
        ];
        for (code, field, case) in cases {
            let err = ClearanceRequest::parse(&case).err();
            assert_eq!(err.as_ref().map(|e| (e.code, e.field.as_str())), Some((code, field)), "{err:?}");
        }
        assert!(ClearanceRequest::parse(&input()).is_ok());
        let all = ClearanceInput { ids: None, all: Some(true), except: Some(vec![one]), ..input() };
        assert!(
            matches!(ClearanceRequest::parse(&all).map(|r| r.selection), Ok(Selection::AllExcept { except: s, .. }) if s.len() == 1)
        );
    }

    #[test]
    fn mismatches_are_refused_unless_a_difference_is_allowed() {
        let rows = [(Amount::from_cents(600), usd()), (Amount::from_cents(300), usd())];
        assert_eq!(
            Posting::plan(&check(1_000), rows, false),
            Err(PostingError::AmountMismatch {
                selected: Amount::from_cents(900),
                check: Amount::from_cents(1_000)
            })
        );
        let eur = Currency::parse("EUR").unwrap_or_else(|_| unreachable!());
        assert!(matches!(
            Posting::plan(&check(900), [(Amount::from_cents(900), eur)], false),
            Err(PostingError::CurrencyMismatch { .. })
        ));
        let posting = Posting::plan(&check(1_000), rows, true);
        assert_eq!(
            posting.as_ref().map(|p| (p.cleared_total, p.difference, p.lines.len())),
            Ok((Amount::from_cents(900), Amount::from_cents(100), 3))
        );
    }

    proptest! {
        #[test]
        fn every_posting_and_its_reversal_balance(
            check_cents in 1_i64..10_000_000_000,
            rows in proptest::collection::vec(-1_000_000_000_i64..1_000_000_000, 1..40),
        ) {
            let rows: Vec<_> = rows.into_iter().map(|c| (Amount::from_cents(c), usd())).collect();
            let posting = Posting::plan(&check(check_cents), rows.iter().copied(), true).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(posting.balances());
            prop_assert!(posting.lines.iter().all(|l| (l.debit == Amount::ZERO) != (l.credit == Amount::ZERO)));
            let reversal = Posting { lines: posting.reversed(), ..posting.clone() };
            prop_assert!(reversal.balances());
            prop_assert_eq!(posting.cleared_total.checked_add(posting.difference), Ok(Amount::from_cents(check_cents)));
        }
    }
}
