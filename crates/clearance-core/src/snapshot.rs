//! The identity of a search snapshot: the canonical filter, the version
//! token and the snapshot id derived from them (DESIGN.md, The snapshot).
//!
//! Snapshot id = SHA-256 of (operator id, canonical filter, version token).
//! Canonical means that field order, id order, duplicate ids, case and
//! whitespace do not change the id, and that an omitted optional field and
//! its default are the same filter; any difference in meaning gives another
//! id.

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::ids::{CedentId, TreatyId};
use crate::money::Currency;
use crate::period::Period;

/// Most treaties one search may name.
pub const TREATY_IDS_MAX: usize = 50;
/// Most cedents one search may name.
pub const CEDENT_IDS_MAX: usize = 200;
/// Longest operator id accepted (the JWT subject).
pub const OPERATOR_ID_LEN_MAX: usize = 128;

/// A refused input: a stable code for clients, the offending field (a JSON
/// pointer) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} at {field}: {message}")]
pub struct InputError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl InputError {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, field: field.into(), message: message.into() }
    }
}

/// Which transactions a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum StatusFilter {
    /// Open rows only: what an operator clears against a check (the default).
    #[default]
    Open,
    Cleared,
    All,
}

impl StatusFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Cleared => "cleared",
            Self::All => "all",
        }
    }
}

/// The operator a request acts for (from the JWT authorizer's claims).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(String);

impl OperatorId {
    /// # Errors
    /// [`InputError`] `invalid_identity` when empty, too long or holding
    /// control characters.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > OPERATOR_ID_LEN_MAX || trimmed.chars().any(char::is_control)
        {
            return Err(InputError::new(
                "invalid_identity",
                "operator",
                format!("the operator id must be 1 to {OPERATOR_ID_LEN_MAX} printable characters"),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A search filter as the request spelled it, before validation.
#[derive(Debug, Clone, Default)]
pub struct FilterInput {
    pub treaty_ids: Vec<String>,
    pub cedent_ids: Vec<String>,
    pub period_from: String,
    pub period_to: String,
    pub status: Option<String>,
    pub currency: Option<String>,
}

/// A validated search filter in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchFilter {
    treaty_ids: BTreeSet<TreatyId>,
    /// Empty means every cedent.
    cedent_ids: BTreeSet<CedentId>,
    period_from: Period,
    period_to: Period,
    status: StatusFilter,
    currency: Option<Currency>,
}

impl SearchFilter {
    /// Validates and canonicalizes a filter.
    ///
    /// # Errors
    /// The first [`InputError`] found, with the JSON pointer of its field.
    pub fn parse(input: &FilterInput) -> Result<Self, InputError> {
        if input.treaty_ids.is_empty() {
            return Err(InputError::new("missing_field", "/treaty_ids", "name at least one treaty"));
        }
        if input.treaty_ids.len() > TREATY_IDS_MAX {
            return Err(InputError::new(
                "too_many_treaties",
                "/treaty_ids",
                format!("a search names at most {TREATY_IDS_MAX} treaties"),
            ));
        }
        if input.cedent_ids.len() > CEDENT_IDS_MAX {
            return Err(InputError::new(
                "too_many_cedents",
                "/cedent_ids",
                format!("a search names at most {CEDENT_IDS_MAX} cedents"),
            ));
        }
        let treaty_ids = input
            .treaty_ids
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                TreatyId::parse(raw).map_err(|e| {
                    InputError::new("invalid_treaty_id", format!("/treaty_ids/{i}"), e.to_string())
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let cedent_ids = input
            .cedent_ids
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                CedentId::parse(raw).map_err(|e| {
                    InputError::new("invalid_cedent_id", format!("/cedent_ids/{i}"), e.to_string())
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let period = |raw: &str, field: &str| {
            Period::parse(raw.trim_ascii())
                .map_err(|e| InputError::new("invalid_period", field, e.to_string()))
        };
        let period_from = period(&input.period_from, "/period_from")?;
        let period_to = period(&input.period_to, "/period_to")?;
        if period_from > period_to {
            return Err(InputError::new(
                "invalid_period_range",
                "/period_to",
                "period_to must not be before period_from",
            ));
        }
        let status = match input.status.as_deref() {
            None => StatusFilter::Open,
            Some("open") => StatusFilter::Open,
            Some("cleared") => StatusFilter::Cleared,
            Some("all") => StatusFilter::All,
            Some(_) => {
                return Err(InputError::new(
                    "invalid_status",
                    "/status",
                    "status must be open, cleared or all",
                ))
            }
        };
        let currency = match &input.currency {
            None => None,
            Some(raw) => Some(
                Currency::parse_code(raw)
                    .map_err(|e| InputError::new("invalid_currency", "/currency", e.to_string()))?,
            ),
        };
        Ok(Self { treaty_ids, cedent_ids, period_from, period_to, status, currency })
    }

    pub fn treaty_ids(&self) -> impl ExactSizeIterator<Item = &TreatyId> {
        self.treaty_ids.iter()
    }

    pub fn cedent_ids(&self) -> impl ExactSizeIterator<Item = &CedentId> {
        self.cedent_ids.iter()
    }

    pub fn period_from(&self) -> Period {
        self.period_from
    }

    pub fn period_to(&self) -> Period {
        self.period_to
    }

    pub fn status(&self) -> StatusFilter {
        self.status
    }

    pub fn currency(&self) -> Option<Currency> {
        self.currency
    }

    /// The canonical text of the filter: fixed field order, sorted and
    /// de-duplicated ids in canonical spelling, defaults written out. Codes
    /// hold only A-Z, 0-9 and '-', so no escaping is needed.
    pub fn canonical(&self) -> String {
        let list = |ids: Vec<&str>| ids.iter().map(|id| format!("\"{id}\"")).collect::<Vec<_>>().join(",");
        format!(
            "{{\"cedent_ids\":[{}],\"currency\":{},\"period_from\":\"{}\",\"period_to\":\"{}\",\"status\":\"{}\",\"treaty_ids\":[{}]}}",
            list(self.cedent_ids.iter().map(CedentId::as_str).collect()),
            self.currency.map_or_else(|| "null".to_owned(), |c| format!("\"{c}\"")),
            self.period_from,
            self.period_to,
            self.status.as_str(),
            list(self.treaty_ids.iter().map(TreatyId::as_str).collect()),
        )
    }
}

/// The scope versions of the treaties a snapshot covers, as they were when
/// it was taken. Opaque to clients: `v1.` and the hex of
/// `TREATY=VERSION;...` in treaty order. A treaty with no rows has version 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionToken(Vec<(TreatyId, i64)>);

/// Longest version token accepted (50 treaties of 32 characters and 19 digits, hex).
pub const VERSION_TOKEN_LEN_MAX: usize = 3 + 2 * TREATY_IDS_MAX * (32 + 1 + 19 + 1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the version token is not one this service issued")]
pub struct TokenError;

impl VersionToken {
    /// A token from (treaty, version) pairs; order and repeats do not matter.
    pub fn new(versions: impl IntoIterator<Item = (TreatyId, i64)>) -> Self {
        let mut pairs: Vec<(TreatyId, i64)> = versions.into_iter().collect();
        pairs.sort();
        pairs.dedup_by(|a, b| a.0 == b.0);
        Self(pairs)
    }

    pub fn versions(&self) -> &[(TreatyId, i64)] {
        &self.0
    }

    /// Whether `raw` is shaped like a token (`v1.` and lower-case hex
    /// pairs, at most the longest token): what a request must send; whether
    /// it is the snapshot's token is decided against the snapshot.
    ///
    /// # Errors
    /// [`TokenError`] for any other shape.
    pub fn check_shape(raw: &str) -> Result<(), TokenError> {
        let hex = raw.strip_prefix("v1.").ok_or(TokenError)?;
        let hex_ok =
            hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if raw.len() > VERSION_TOKEN_LEN_MAX || !hex_ok {
            return Err(TokenError);
        }
        Ok(())
    }

    /// # Errors
    /// [`TokenError`] for anything [`VersionToken::to_string`] does not produce.
    pub fn parse(raw: &str) -> Result<Self, TokenError> {
        if raw.len() > VERSION_TOKEN_LEN_MAX {
            return Err(TokenError);
        }
        let hex_part = raw.strip_prefix("v1.").ok_or(TokenError)?;
        let bytes = hex::decode(hex_part).map_err(|_| TokenError)?;
        let text = String::from_utf8(bytes).map_err(|_| TokenError)?;
        let mut pairs = Vec::new();
        for item in text.split(';').filter(|s| !s.is_empty()) {
            let (treaty, version) = item.split_once('=').ok_or(TokenError)?;
            let treaty = TreatyId::parse(treaty).map_err(|_| TokenError)?;
            let version: i64 = version.parse().map_err(|_| TokenError)?;
            if version < 0 {
                return Err(TokenError);
            }
            pairs.push((treaty, version));
        }
        let token = Self::new(pairs);
        // Only the spelling this service issues is a token: one rule for
        // case, order, repeats, separators, signs and leading zeros (fuzzing
        // found `3D` for `3d` and `=00` for `=0` accepted by piecewise checks).
        if token.to_string() != raw {
            return Err(TokenError);
        }
        Ok(token)
    }
}

impl fmt::Display for VersionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.0.iter().map(|(t, v)| format!("{t}={v}")).collect();
        write!(f, "v1.{}", hex::encode(text.join(";")))
    }
}

/// SHA-256 of (operator, canonical filter, version token), hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(String);

impl SnapshotId {
    pub fn derive(operator: &OperatorId, filter: &SearchFilter, token: &VersionToken) -> Self {
        let mut hasher = Sha256::new();
        // Length-prefixed parts: no two different triples hash the same text.
        for part in [operator.as_str().to_owned(), filter.canonical(), token.to_string()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        Self(hex::encode(hasher.finalize()))
    }

    /// An id from a SHA-256 digest (views derive theirs this way).
    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    /// # Errors
    /// [`InputError`] `invalid_snapshot_id` unless 64 lower-case hex digits.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InputError::new(
                "invalid_snapshot_id",
                "snapshot_id",
                "a snapshot id is 64 lower-case hex digits",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input() -> FilterInput {
        FilterInput {
            treaty_ids: vec!["TR-0001".into(), "TR-0002".into()],
            cedent_ids: vec!["CED-001".into()],
            period_from: "2024-01".into(),
            period_to: "2024-12".into(),
            status: Some("open".into()),
            currency: Some("USD".into()),
        }
    }

    fn id_of(input: &FilterInput, token: &VersionToken) -> Result<SnapshotId, InputError> {
        Ok(SnapshotId::derive(&OperatorId::parse("op-a")?, &SearchFilter::parse(input)?, token))
    }

    fn token() -> VersionToken {
        VersionToken::new([(TreatyId::parse("TR-0001").unwrap_or_else(|_| unreachable!()), 3)])
    }

    #[test]
    fn bad_filters_name_their_field() {
        let cases: [(&str, &str, FilterInput); 6] = [
            ("missing_field", "/treaty_ids", FilterInput { treaty_ids: vec![], ..input() }),
            (
                "too_many_treaties",
                "/treaty_ids",
                FilterInput { treaty_ids: vec!["TR-1".into(); 51], ..input() },
            ),
            ("invalid_period", "/period_from", FilterInput { period_from: "2024-1".into(), ..input() }),
            ("invalid_period_range", "/period_to", FilterInput { period_from: "2025-01".into(), ..input() }),
            ("invalid_status", "/status", FilterInput { status: Some("pending".into()), ..input() }),
            (
                "invalid_treaty_id",
                "/treaty_ids/1",
                FilterInput { treaty_ids: vec!["TR-1".into(), "TR 2".into()], ..input() },
            ),
        ];
        for (code, field, case) in cases {
            let err = SearchFilter::parse(&case).err();
            assert_eq!(err.as_ref().map(|e| (e.code, e.field.as_str())), Some((code, field)), "{err:?}");
        }
    }

    #[test]
    fn omitted_defaults_are_the_same_filter() -> Result<(), InputError> {
        let explicit = id_of(&FilterInput { cedent_ids: vec![], currency: None, ..input() }, &token())?;
        let omitted =
            id_of(&FilterInput { cedent_ids: vec![], currency: None, status: None, ..input() }, &token())?;
        assert_eq!(explicit, omitted);
        Ok(())
    }

    #[test]
    fn version_tokens_round_trip_and_refuse_forgeries() {
        let t = VersionToken::new([
            (TreatyId::parse("TR-0002").unwrap_or_else(|_| unreachable!()), 7),
            (TreatyId::parse("TR-0001").unwrap_or_else(|_| unreachable!()), 0),
        ]);
        assert_eq!(VersionToken::parse(&t.to_string()), Ok(t));
        for bad in [
            "",
            "v1.",
            "v1.zz",
            "v2.00",
            &format!("v1.{}", hex::encode("tr-0001=1")),
            &format!("v1.{}", hex::encode("TR-0002=1;TR-0001=1")),
            &format!("v1.{}", hex::encode("TR-0001=-1")),
            // The issued spelling is lower-case hex (a fuzzing find).
            &format!("v1.{}", hex::encode_upper("TR-0001=1")),
            "v1.545254523D30",
            &format!("v1.{}", hex::encode("TR-0001=07")),
            &format!("v1.{}", hex::encode("TR-0001=+7")),
            &format!("v1.{}", hex::encode("TR-0001=1;;TR-0002=1")),
            &format!("v1.{}", hex::encode("TR-0001=1;")),
        ] {
            if bad == "v1." {
                continue; // the empty token is the canonical token of no treaty
            }
            assert_eq!(VersionToken::parse(bad), Err(TokenError), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn the_same_filter_written_differently_has_the_same_snapshot_id(
            treaties in proptest::collection::btree_set(1u32..500, 1..8),
            cedents in proptest::collection::btree_set(1u32..300, 0..5),
            from in 0u32..60, span in 0u32..24,
            shuffle_seed in any::<u64>(),
            lower in any::<bool>(), pad in any::<bool>(), repeat in any::<bool>(),
        ) {
            let period = |m: u32| format!("{}-{:02}", 2021 + m / 12, m % 12 + 1);
            let base = FilterInput {
                treaty_ids: treaties.iter().map(|n| format!("TR-{n:04}")).collect(),
                cedent_ids: cedents.iter().map(|n| format!("CED-{n:03}")).collect(),
                period_from: period(from),
                period_to: period(from + span),
                status: None,
                currency: None,
            };
            let mut variant = base.clone();
            let rotate = (shuffle_seed as usize) % variant.treaty_ids.len();
            variant.treaty_ids.rotate_left(rotate);
            variant.treaty_ids.reverse();
            variant.cedent_ids.reverse();
            if lower { variant.treaty_ids.iter_mut().for_each(|t| *t = t.to_lowercase()); }
            if pad { variant.treaty_ids.iter_mut().for_each(|t| *t = format!("  {t}\t")); variant.period_from = format!(" {} ", variant.period_from); }
            if repeat { let first = variant.treaty_ids[0].clone(); variant.treaty_ids.push(first); }
            // Status and currency are enums, spelled one way (the schema's).
            variant.status = Some("open".into());
            let a = id_of(&base, &token()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let b = id_of(&variant, &token()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(a, b);
        }

        #[test]
        fn any_real_difference_gives_another_snapshot_id(which in 0usize..7, n in 1u32..400) {
            let base = input();
            let mut other = base.clone();
            match which {
                0 => other.treaty_ids.push(format!("TR-{:04}", 1000 + n)),
                1 => other.cedent_ids.push(format!("CED-{:03}", 500 + n)),
                2 => other.period_from = "2023-12".into(),
                3 => other.period_to = "2025-01".into(),
                4 => other.status = Some("all".into()),
                5 => other.currency = None,
                _ => other.treaty_ids.truncate(1),
            }
            let a = id_of(&base, &token()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let b = id_of(&other, &token()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_ne!(&a, &b);
            // Another operator, or another token, is another snapshot too.
            let filter = SearchFilter::parse(&base).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let op_b = OperatorId::parse("op-b").map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_ne!(&SnapshotId::derive(&op_b, &filter, &token()), &a);
            let newer = VersionToken::new([(TreatyId::parse("TR-0001").map_err(|e| TestCaseError::fail(e.to_string()))?, 4)]);
            prop_assert_ne!(&id_of(&base, &newer).map_err(|e| TestCaseError::fail(e.to_string()))?, &a);
        }

        #[test]
        fn token_parse_never_panics(raw in "\\PC{0,80}") {
            let _ = VersionToken::parse(&raw);
        }
    }
}
