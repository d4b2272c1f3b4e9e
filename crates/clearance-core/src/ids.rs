//! Identifiers. Treaty and cedent ids are upstream codes, kept in one
//! canonical spelling (trimmed, upper case) so that the same treaty is never
//! two keys. Transaction ids are UUID v5 of the upstream natural key, so a
//! re-load of the same upstream row yields the same id.

use std::fmt;

use uuid::Uuid;

use crate::period::Period;

/// Longest treaty or cedent code accepted.
pub const CODE_LEN_MAX: usize = 32;

/// Longest upstream source reference accepted.
pub const SOURCE_REF_LEN_MAX: usize = 64;

/// Namespace of transaction ids (UUID v5). Never change it: every id already
/// in a ledger was derived from it.
pub const TRANSACTION_NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_9d0a_4a8b_4f3e_9b1d_2f6a_0c35_7e41);

/// Why a code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {CODE_LEN_MAX} characters")]
    TooLong,
    #[error("may hold only letters A-Z, digits and '-'")]
    BadCharacter,
}

fn canonical_code(raw: &str) -> Result<String, CodeError> {
    // ASCII white space only, so the schema's pattern says the same.
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() {
        return Err(CodeError::Empty);
    }
    if trimmed.len() > CODE_LEN_MAX {
        return Err(CodeError::TooLong);
    }
    if !trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(CodeError::BadCharacter);
    }
    Ok(trimmed.to_ascii_uppercase())
}

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Shared, not copied, on clone: a snapshot's rows repeat a few
        /// codes many times ([`CodeCache`]).
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// Parses an upstream code into its canonical spelling.
            ///
            /// # Errors
            /// [`CodeError`] when the code is empty, too long or holds a
            /// character outside A-Z, 0-9 and '-'.
            pub fn parse(raw: &str) -> Result<Self, CodeError> {
                canonical_code(raw).map(|code| Self(code.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_type!(
    /// A reinsurance treaty, e.g. `TR-0001`.
    TreatyId
);
code_type!(
    /// A ceding company, e.g. `CED-001`.
    CedentId
);

/// Parses codes that repeat (the treaty and cedent of each row of a page)
/// once each: a repeat is a clone of the first, sharing its text.
#[derive(Debug)]
pub struct CodeCache<T> {
    seen: Vec<T>,
}

impl<T> Default for CodeCache<T> {
    fn default() -> Self {
        Self { seen: Vec::new() }
    }
}

/// Distinct codes a cache keeps; past that it parses without keeping.
const CODE_CACHE_MAX: usize = 64;

impl<T: Clone> CodeCache<T> {
    /// The code spelled `raw`, parsed by `parse` unless seen before.
    ///
    /// # Errors
    /// What `parse` answers.
    pub fn get(
        &mut self,
        raw: &str,
        as_str: impl Fn(&T) -> &str,
        parse: impl FnOnce(&str) -> Result<T, CodeError>,
    ) -> Result<T, CodeError> {
        if let Some(code) = self.seen.iter().find(|c| as_str(c) == raw) {
            return Ok(code.clone());
        }
        let code = parse(raw)?;
        if self.seen.len() < CODE_CACHE_MAX {
            self.seen.push(code.clone());
        }
        Ok(code)
    }
}

/// Id of a ledger transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransactionId(pub Uuid);

impl TransactionId {
    /// The id of an upstream transaction: UUID v5 over its natural key.
    ///
    /// The natural key holds the treaty and the accounting period as well as
    /// the upstream reference, so one id always lands in the same partition
    /// and the primary key (which must include the partition keys) still
    /// identifies the upstream row uniquely.
    pub fn from_natural_key(treaty: &TreatyId, period: Period, source_ref: &str) -> Self {
        let key = format!("{treaty}|{period}|{source_ref}");
        Self(Uuid::new_v5(&TRANSACTION_NAMESPACE, key.as_bytes()))
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_canonical_upper_case_and_trimmed() {
        assert_eq!(TreatyId::parse(" tr-0001 ").map(|t| t.as_str().to_owned()), Ok("TR-0001".to_owned()));
        assert_eq!(TreatyId::parse(""), Err(CodeError::Empty));
        assert_eq!(TreatyId::parse("TR 1"), Err(CodeError::BadCharacter));
        assert_eq!(CedentId::parse(&"C".repeat(33)), Err(CodeError::TooLong));
    }

    #[test]
    fn transaction_id_is_stable_for_the_same_natural_key() -> Result<(), Box<dyn std::error::Error>> {
        let treaty = TreatyId::parse("TR-0001")?;
        let period = Period::parse("2024-03")?;
        let a = TransactionId::from_natural_key(&treaty, period, "SRC-1");
        let b = TransactionId::from_natural_key(&treaty, period, "SRC-1");
        let c = TransactionId::from_natural_key(&treaty, period, "SRC-2");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.0.get_version_num(), 5);
        Ok(())
    }
}
