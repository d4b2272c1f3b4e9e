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

/// Most roles one identity may carry, and the longest role name.
pub const ROLES_MAX: usize = 20;
pub const ROLE_LEN_MAX: usize = 32;

/// The role that may close and reopen accounting periods.
pub const CLOSER_ROLE: &str = "closer";

/// An authenticated operator, their entitlement and their roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub operator: OperatorId,
    pub entitlement: Entitlement,
    pub roles: BTreeSet<String>,
}

impl Identity {
    /// An identity without roles.
    ///
    /// # Errors
    /// [`InputError`] `invalid_identity` when either value is malformed.
    pub fn parse(operator: &str, treaties: &str) -> Result<Self, InputError> {
        Ok(Self {
            operator: OperatorId::parse(operator)?,
            entitlement: Entitlement::parse(treaties)?,
            roles: BTreeSet::new(),
        })
    }

    /// This identity with the roles claim: role names separated by commas
    /// or spaces, optionally in brackets and quotes, as API Gateway renders
    /// a JWT array claim. The claim is often shared with other
    /// applications, so it never fails the identity: names that are not
    /// ours to read (other than lower-case letters, digits, `_` and `-`, or
    /// longer than [`ROLE_LEN_MAX`]) are skipped, and at most [`ROLES_MAX`]
    /// are kept.
    #[must_use]
    pub fn with_roles(mut self, raw: &str) -> Self {
        let trimmed = raw.trim().trim_start_matches('[').trim_end_matches(']');
        let ours = |role: &&str| {
            role.len() <= ROLE_LEN_MAX
                && role
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        let roles = trimmed.split([',', ' ']).map(|s| s.trim().trim_matches('"')).filter(|s| !s.is_empty());
        self.roles.extend(roles.filter(ours).take(ROLES_MAX).map(str::to_owned));
        self
    }

    /// Whether this identity may close and reopen periods.
    pub fn is_closer(&self) -> bool {
        self.roles.contains(CLOSER_ROLE)
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
        let who = Identity::parse("op", "*")?;
        assert!(!who.is_closer());
        assert!(who.clone().with_roles("[\"closer\" viewer]").is_closer());
        assert!(who.clone().with_roles("closer,viewer").is_closer());
        assert!(!who.clone().with_roles("closers").is_closer());
        // Roles of other applications never fail the identity.
        let shared = who.clone().with_roles("[Closer finance.admin closer]");
        assert_eq!(shared.roles.iter().collect::<Vec<_>>(), ["closer"]);
        let many: Vec<String> = (0..ROLES_MAX * 2).map(|n| format!("r{n}")).collect();
        assert_eq!(who.with_roles(&many.join(",")).roles.len(), ROLES_MAX);
        Ok(())
    }
}
