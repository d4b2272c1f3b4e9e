//! Ledger transactions and the upstream record they are loaded from.

use std::fmt;

use chrono::NaiveDate;

use crate::ids::{CedentId, TransactionId, TreatyId, SOURCE_REF_LEN_MAX};
use crate::money::{Amount, Currency};
use crate::period::Period;

/// Longest free-text reference accepted.
pub const REFERENCE_LEN_MAX: usize = 64;

/// Where a transaction stands in clearing. `pending` is held by a batch job
/// between reserving a chunk and finalizing or compensating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    Open,
    Pending,
    Cleared,
}

impl TxnStatus {
    /// The SQL enum label and the wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Cleared => "cleared",
        }
    }

    /// # Errors
    /// [`UnknownStatus`] for any label other than open, pending, cleared.
    pub fn parse(raw: &str) -> Result<Self, UnknownStatus> {
        match raw {
            "open" => Ok(Self::Open),
            "pending" => Ok(Self::Pending),
            "cleared" => Ok(Self::Cleared),
            _ => Err(UnknownStatus),
        }
    }
}

impl fmt::Display for TxnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status must be open, pending or cleared")]
pub struct UnknownStatus;

/// A field of an input record that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, err: impl fmt::Display) -> Self {
        Self { field, message: err.to_string() }
    }
}

/// One transaction as an upstream system sends it, validated. Loading it
/// creates an `open` ledger row with `row_version` 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTransaction {
    pub id: TransactionId,
    pub source_ref: String,
    pub treaty_id: TreatyId,
    pub cedent_id: CedentId,
    pub accounting_period: Period,
    pub txn_date: NaiveDate,
    pub amount: Amount,
    pub currency: Currency,
    pub reference: String,
}

/// A ledger transaction as a snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub id: TransactionId,
    pub treaty_id: TreatyId,
    pub cedent_id: CedentId,
    pub accounting_period: Period,
    pub txn_date: NaiveDate,
    pub amount: Amount,
    pub currency: Currency,
    pub reference: String,
    pub status: TxnStatus,
    /// The version the optimistic guard of a clearance compares against.
    pub row_version: i64,
}

/// The raw text fields of an upstream record, in the documented column order.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamFields<'a> {
    pub source_ref: &'a str,
    pub treaty_id: &'a str,
    pub cedent_id: &'a str,
    pub accounting_period: &'a str,
    pub txn_date: &'a str,
    pub amount: &'a str,
    pub currency: &'a str,
    pub reference: &'a str,
}

fn printable_text(
    field: &'static str,
    raw: &str,
    len_max: usize,
    required: bool,
) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if required && trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > len_max {
        return Err(FieldError::new(field, format!("must be at most {len_max} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not hold control characters"));
    }
    Ok(trimmed.to_owned())
}

impl UpstreamTransaction {
    /// Validates the text fields of one upstream record.
    ///
    /// # Errors
    /// The first [`FieldError`] found, naming the field and what is wrong.
    pub fn parse(fields: UpstreamFields<'_>) -> Result<Self, FieldError> {
        let source_ref = printable_text("source_ref", fields.source_ref, SOURCE_REF_LEN_MAX, true)?;
        let treaty_id = TreatyId::parse(fields.treaty_id).map_err(|e| FieldError::new("treaty_id", e))?;
        let cedent_id = CedentId::parse(fields.cedent_id).map_err(|e| FieldError::new("cedent_id", e))?;
        let accounting_period = Period::parse(fields.accounting_period.trim())
            .map_err(|e| FieldError::new("accounting_period", e))?;
        let txn_date = NaiveDate::parse_from_str(fields.txn_date.trim(), "%Y-%m-%d")
            .map_err(|_| FieldError::new("txn_date", "must be a date written YYYY-MM-DD"))?;
        let amount = Amount::parse(fields.amount.trim()).map_err(|e| FieldError::new("amount", e))?;
        let currency = Currency::parse(fields.currency).map_err(|e| FieldError::new("currency", e))?;
        let reference = printable_text("reference", fields.reference, REFERENCE_LEN_MAX, false)?;
        let id = TransactionId::from_natural_key(&treaty_id, accounting_period, &source_ref);
        Ok(Self {
            id,
            source_ref,
            treaty_id,
            cedent_id,
            accounting_period,
            txn_date,
            amount,
            currency,
            reference,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> UpstreamFields<'static> {
        UpstreamFields {
            source_ref: "SRC-1",
            treaty_id: "tr-0001",
            cedent_id: "CED-001",
            accounting_period: "2024-03",
            txn_date: "2024-03-15",
            amount: "1234.50",
            currency: "usd",
            reference: "SOA 2024Q1",
        }
    }

    #[test]
    fn a_good_record_is_canonical() -> Result<(), FieldError> {
        let txn = UpstreamTransaction::parse(fields())?;
        assert_eq!(txn.treaty_id.as_str(), "TR-0001");
        assert_eq!(txn.currency.as_str(), "USD");
        assert_eq!(txn.amount.to_string(), "1234.50");
        Ok(())
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: [(&str, UpstreamFields<'static>); 6] = [
            ("amount", UpstreamFields { amount: "12.345", ..fields() }),
            ("accounting_period", UpstreamFields { accounting_period: "2024-13", ..fields() }),
            ("txn_date", UpstreamFields { txn_date: "2024-02-30", ..fields() }),
            ("currency", UpstreamFields { currency: "ZZZ", ..fields() }),
            ("treaty_id", UpstreamFields { treaty_id: "", ..fields() }),
            ("reference", UpstreamFields { reference: "a\u{7}b", ..fields() }),
        ];
        for (field, input) in cases {
            assert_eq!(UpstreamTransaction::parse(input).map_err(|e| e.field), Err(field));
        }
    }
}
