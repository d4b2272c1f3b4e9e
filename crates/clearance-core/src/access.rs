//! Who is asking, and which treaties they may see.

use std::collections::BTreeSet;

use crate::ids::TreatyId;
use crate::snapshot::{InputError, OperatorId};

/// Most treaties one identity may list; `*` stands for all.
pub const ENTITLED_TREATIES_MAX: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entitlement {
    All,
    Treaties(BTreeSet<TreatyId>),
}

impl Entitlement {
    /// Parses the entitled-treaties claim: `*`, or treaty ids separated by
    /// commas or spaces, optionally in brackets (how API Gateway renders a
    /// JWT array claim).
    ///
    /// # Errors
    /// [`InputError`] `invalid_identity` for an id that is not a treaty code
    /// or too many of them.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim().trim_start_matches('[').trim_end_matches(']').trim();
        if trimmed == "*" {
            return Ok(Self::All);
        }
        let ids = trimmed
            .split([',', ' '])
            .map(|s| s.trim().trim_matches('"'))
            .filter(|s| !s.is_empty())
            .map(|s| {
                TreatyId::parse(s).map_err(|e| InputError::new("invalid_identity", "treaties", e.to_string()))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        if ids.len() > ENTITLED_TREATIES_MAX {
            return Err(InputError::new("invalid_identity", "treaties", "too many entitled treaties"));
        }
        Ok(Self::Treaties(ids))
    }

    pub fn allows(&self, treaty: &TreatyId) -> bool {
        match self {
            Self::All => true,
            Self::Treaties(ids) => ids.contains(treaty),
        }
    }
}

/// An authenticated operator and their entitlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub operator: OperatorId,
    pub entitlement: Entitlement,
}

impl Identity {
    /// # Errors
    /// [`InputError`] `invalid_identity` when either value is malformed.
    pub fn parse(operator: &str, treaties: &str) -> Result<Self, InputError> {
        Ok(Self { operator: OperatorId::parse(operator)?, entitlement: Entitlement::parse(treaties)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlement_claims_in_every_spelling() -> Result<(), InputError> {
        assert_eq!(Entitlement::parse(" * ")?, Entitlement::All);
        let t = |s: &str| TreatyId::parse(s).unwrap_or_else(|_| unreachable!());
        let both = Entitlement::Treaties([t("TR-0001"), t("TR-0002")].into());
        assert_eq!(Entitlement::parse("TR-0001,tr-0002")?, both);
        assert_eq!(Entitlement::parse("[TR-0001 TR-0002]")?, both);
        assert_eq!(Entitlement::parse("[\"TR-0001\",\"TR-0002\"]")?, both);
        assert!(Entitlement::parse("TR 1;x").is_err());
        assert!(!Entitlement::parse("")?.allows(&t("TR-0001")));
        Ok(())
    }
}
