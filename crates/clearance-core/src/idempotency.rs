//! Idempotency of mutating requests: the key a client sends, the hash that
//! says whether a retry is the same request, and the decision taken on a
//! second arrival. The record lives behind [`IdempotencyStore`]; the ledger
//! binds the key to what it posts in the same transaction, so a crash
//! between the two cannot post twice (see ADR 0005).

use std::future::Future;

use sha2::{Digest, Sha256};

use crate::ports::BackendError;
use crate::snapshot::{InputError, OperatorId};

/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

/// A client's idempotency key: 1 to 128 of `A-Z a-z 0-9 - _ . :` (a UUID
/// fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// # Errors
    /// [`InputError`] `missing_idempotency_key` or `invalid_idempotency_key`
    /// on the `Idempotency-Key` header.
    pub fn parse(raw: Option<&str>) -> Result<Self, InputError> {
        let Some(raw) = raw else {
            return Err(InputError::new(
                "missing_idempotency_key",
                "Idempotency-Key",
                "every mutating request carries an Idempotency-Key header (a fresh UUID per intended action)",
            ));
        };
        let valid = !raw.is_empty()
            && raw.len() <= IDEMPOTENCY_KEY_LEN_MAX
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !valid {
            return Err(InputError::new(
                "invalid_idempotency_key",
                "Idempotency-Key",
                format!("an idempotency key is 1 to {IDEMPOTENCY_KEY_LEN_MAX} of A-Z a-z 0-9 - _ . :"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same": method, path and the body's bytes.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// A mutating request's idempotency key with its fingerprint: the ledger
/// keeps both with what the request posted, so the key answers only this
/// request for as long as the ledger lives (ADR 0005), not only while the
/// idempotency record does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub key: IdempotencyKey,
    /// [`request_hash`] of the request.
    pub request_hash: String,
}

impl RequestKey {
    pub fn new(key: IdempotencyKey, method: &str, path: &str, body: &[u8]) -> Self {
        let request_hash = request_hash(method, path, body);
        Self { key, request_hash }
    }

    pub fn as_str(&self) -> &str {
        self.key.as_str()
    }
}

/// A response kept for replay: status and body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The record already held under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub request_hash: String,
    /// The response, once the first request finished.
    pub response: Option<StoredResponse>,
    /// Until when the first request holds the key while it runs.
    pub lease_until_secs: i64,
}

/// The outcome of claiming a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free (or its record expired): this request runs.
    Claimed,
    Existing(Existing),
}

/// Where idempotency records live. Every write is conditional: two callers
/// can never both claim a key.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `operator` with an in-flight record leased until
    /// `lease_until_secs` and kept until `expires_at_secs`, unless a live
    /// record exists, which is returned instead.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when the store cannot answer.
    fn claim(
        &self,
        operator: &OperatorId,
        key: &IdempotencyKey,
        request_hash: &str,
        now_secs: i64,
        lease_until_secs: i64,
        expires_at_secs: i64,
    ) -> impl Future<Output = Result<Claim, BackendError>> + Send;

    /// Takes over an in-flight record whose lease lapsed (its request
    /// crashed): succeeds only if the lease is still `old_lease_until_secs`.
    ///
    /// # Errors
    /// As [`IdempotencyStore::claim`].
    fn take_over(
        &self,
        operator: &OperatorId,
        key: &IdempotencyKey,
        old_lease_until_secs: i64,
        lease_until_secs: i64,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Stores the final response of the request that holds the key.
    ///
    /// # Errors
    /// As [`IdempotencyStore::claim`].
    fn complete(
        &self,
        operator: &OperatorId,
        key: &IdempotencyKey,
        request_hash: &str,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Frees a key whose request failed without an answer worth keeping
    /// (a backend outage), so a retry runs it again. Only the claimant's
    /// own claim: the record MUST still be in flight under the lease this
    /// request claimed it with (`lease_until_secs`), so a request whose
    /// lease lapsed and was taken over never frees its successor's claim.
    ///
    /// # Errors
    /// As [`IdempotencyStore::claim`].
    fn release(
        &self,
        operator: &OperatorId,
        key: &IdempotencyKey,
        request_hash: &str,
        lease_until_secs: i64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// How long records live and how long a running request holds its key.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyConfig {
    /// At least 24 hours (a client retrying the next morning gets the answer).
    pub ttl_secs: i64,
    /// Longer than the function's timeout, so a live request is never taken over.
    pub lease_secs: i64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self { ttl_secs: 86_400, lease_secs: 60 }
    }
}

/// What to do with an arriving request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it: this request holds the key, under the lease that lapses at
    /// `lease_until_secs` (its token for releasing the key).
    Execute { lease_until_secs: i64 },
    /// Answer with the stored response; run nothing.
    Replay(StoredResponse),
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The key was used for another request: 422.
    #[error("this idempotency key was used for a different request")]
    KeyReused,
    /// The first request with this key is still running: 409.
    #[error("a request with this idempotency key is still in flight")]
    InFlight,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Claims the key or decides how to answer a repeat.
///
/// # Errors
/// [`IdempotencyError`]: the key reused with another body, still in flight,
/// or the store unavailable.
pub async fn begin<I: IdempotencyStore>(
    store: &I,
    config: IdempotencyConfig,
    operator: &OperatorId,
    key: &IdempotencyKey,
    request_hash: &str,
    now_secs: i64,
) -> Result<Decision, IdempotencyError> {
    let lease_until = now_secs + config.lease_secs;
    let claim =
        store.claim(operator, key, request_hash, now_secs, lease_until, now_secs + config.ttl_secs).await?;
    let existing = match claim {
        Claim::Claimed => return Ok(Decision::Execute { lease_until_secs: lease_until }),
        Claim::Existing(existing) => existing,
    };
    if existing.request_hash != request_hash {
        return Err(IdempotencyError::KeyReused);
    }
    if let Some(response) = existing.response {
        return Ok(Decision::Replay(response));
    }
    if existing.lease_until_secs > now_secs {
        return Err(IdempotencyError::InFlight);
    }
    // The first request died holding the key. Whoever wins the take-over
    // runs it again; the ledger's own key binding answers with what was
    // posted if the first got that far.
    if store.take_over(operator, key, existing.lease_until_secs, lease_until).await? {
        Ok(Decision::Execute { lease_until_secs: lease_until })
    } else {
        Err(IdempotencyError::InFlight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_plain() {
        assert_eq!(IdempotencyKey::parse(None).map_err(|e| e.code), Err("missing_idempotency_key"));
        for bad in ["", "a b", "ключ", &"k".repeat(129), "a\nb"] {
            assert_eq!(IdempotencyKey::parse(Some(bad)).map_err(|e| e.code), Err("invalid_idempotency_key"));
        }
        let key = uuid::Uuid::from_u128(7).to_string();
        assert_eq!(IdempotencyKey::parse(Some(&key)).map(|k| k.as_str().to_owned()), Ok(key));
    }

    #[test]
    fn the_hash_covers_method_path_and_every_body_byte() {
        let base = request_hash("POST", "/v1/clearances", b"{}");
        assert_eq!(base, request_hash("POST", "/v1/clearances", b"{}"));
        assert_ne!(base, request_hash("POST", "/v1/clearances", b"{ }"));
        assert_ne!(base, request_hash("POST", "/v1/clearances/x/reversal", b"{}"));
    }
}
