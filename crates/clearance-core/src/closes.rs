//! Period close: per treaty and accounting period, a close and a reopen
//! (with a reason) by an operator holding the `closer` role. Both are
//! ledger entries; a period's state is its latest entry. Clearing or
//! reversing a row of a closed period is refused by the ledger, in the same
//! transaction as the guard (ADR 0015).

use chrono::{DateTime, Utc};

use crate::ids::TreatyId;
use crate::period::Period;
use crate::snapshot::InputError;

/// The longest reason a close or a reopen may give.
pub const PERIOD_REASON_LEN_MAX: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodAction {
    Close,
    Reopen,
}

impl PeriodAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Reopen => "reopen",
        }
    }

    /// The route segment: `close` or `reopen`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "close" => Some(Self::Close),
            "reopen" => Some(Self::Reopen),
            _ => None,
        }
    }

    /// The state a period is in after this action.
    pub fn state(self) -> &'static str {
        match self {
            Self::Close => "closed",
            Self::Reopen => "open",
        }
    }
}

/// The reason of a close or a reopen, as sent (`{"reason": "..."}`):
/// optional for a close, mandatory for a reopen; when given, 1 to 500
/// printable characters. Returned trimmed of surrounding spaces and line
/// breaks (empty for a close without one).
///
/// # Errors
/// [`InputError`] `missing_field` or `invalid_reason` on `/reason`.
pub fn check_reason(reason: Option<&str>, action: PeriodAction) -> Result<String, InputError> {
    let Some(reason) = reason else {
        return match action {
            PeriodAction::Close => Ok(String::new()),
            PeriodAction::Reopen => {
                Err(InputError::new("missing_field", "/reason", "a reopen needs a reason"))
            }
        };
    };
    if !crate::text::is_printable_text(reason, PERIOD_REASON_LEN_MAX, true) {
        return Err(InputError::new(
            "invalid_reason",
            "/reason",
            format!("a reason is 1 to {PERIOD_REASON_LEN_MAX} printable characters"),
        ));
    }
    Ok(reason.trim_matches([' ', '\n']).to_owned())
}

/// A closed period of a search's treaties, as its meta keeps it and the
/// search answers it (`{"treaty_id": "TR-0001", "period": "2024-03"}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ClosedPeriod {
    pub treaty_id: String,
    pub period: String,
}

/// A close or a reopen as the ledger is asked to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodChange {
    pub treaty: TreatyId,
    pub period: Period,
    pub action: PeriodAction,
    pub reason: String,
    pub operator_id: String,
    pub idempotency_key: String,
    pub request_hash: String,
}

/// A period's entry as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodEntry {
    pub treaty: TreatyId,
    pub period: Period,
    pub action: PeriodAction,
    pub reason: String,
    pub operator_id: String,
    pub at: DateTime<Utc>,
    /// The treaty's scope version after the entry; 0 when the ledger
    /// answered a replay of an earlier change.
    pub scope_version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopen_needs_a_reason_and_a_close_may_give_one() {
        assert_eq!(check_reason(None, PeriodAction::Close).ok(), Some(String::new()));
        assert_eq!(check_reason(Some(" Q2 done\n"), PeriodAction::Close).ok(), Some("Q2 done".into()));
        let code = |reason, action| check_reason(reason, action).err().map(|e| e.code);
        assert_eq!(code(None, PeriodAction::Reopen), Some("missing_field"));
        assert_eq!(code(Some("  \n"), PeriodAction::Reopen), Some("invalid_reason"));
        assert_eq!(code(Some(""), PeriodAction::Close), Some("invalid_reason"));
        assert_eq!(code(Some("tab\tin"), PeriodAction::Close), Some("invalid_reason"));
        let long = "x".repeat(PERIOD_REASON_LEN_MAX + 1);
        assert_eq!(code(Some(&long), PeriodAction::Reopen), Some("invalid_reason"));
        assert!(check_reason(Some("late accrual from the cedent"), PeriodAction::Reopen).is_ok());
    }
}
