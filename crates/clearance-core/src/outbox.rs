//! Events, and the transactional outbox that makes them never lost (ADR
//! 0010). Every event the ledger commits (a posting, a reversal, a failed
//! job's release) is written in the same PostgreSQL transaction as the
//! ledger change; after the commit the request or step that made it
//! publishes it, and a scheduled drain publishes whatever that could not
//! (the bus down, the function gone). Delivery is at least once, each event
//! with a stable `event_id` a consumer drops duplicates by, and in order per
//! clearance: of each clearance only its oldest unpublished event is ever
//! published, so a reversal never overtakes its posting.

use std::future::Future;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::batch::JobFailure;
use crate::ports::BackendError;

/// Events claimed (and published) per round of a drain.
pub const DRAIN_BATCH_MAX: u32 = 100;

/// How long a claim holds an event from other drainers: longer than a
/// round may publish ([`ROUND_BUDGET`]), so two drainers never publish the
/// same event in the normal course, and short enough that a drainer that
/// died frees its events soon.
pub const CLAIM_SECS: u32 = 60;

/// A round stops publishing after this long (a slow bus: the SDK bounds
/// each publish at 4 s) and leaves the rest of its claim for the next.
pub const ROUND_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// A drain starts no round after this long: with a round at most
/// [`ROUND_BUDGET`], a scheduled drain ends well inside the batch
/// function's 120 s.
pub const DRAIN_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// A round stops after this many refusals: the bus is down, not one event.
/// Below it, a refused event does not hold back other clearances' events
/// (only its own clearance's later ones, which a claim never holds).
pub const ROUND_REFUSALS_MAX: usize = 3;

/// Most conflicting ids a `ClearanceFailed` event carries (the job's
/// status holds them all): an event stays far under EventBridge's 256 KB.
pub const EVENT_IDS_MAX: usize = 1_000;

/// Rounds of the drain after a commit: a clearance has at most three
/// events (posted, reversed, or failed), published one a round.
pub const AFTER_COMMIT_ROUNDS: u32 = 3;

/// What happened to a clearance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    ClearancePosted,
    ClearanceFailed,
    ClearanceReversed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClearancePosted => "ClearancePosted",
            Self::ClearanceFailed => "ClearanceFailed",
            Self::ClearanceReversed => "ClearanceReversed",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A clearance event on the bus. `event_id` is stable (derived from the
/// clearance and the kind), so a consumer drops duplicates by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearanceEvent {
    pub event_id: Uuid,
    pub kind: EventKind,
    pub clearance_id: Uuid,
    pub job_id: Option<Uuid>,
    pub treaty_id: String,
    pub operator_id: String,
    pub row_count: u64,
    pub error: Option<JobFailure>,
}

impl ClearanceEvent {
    /// The stable id of the `kind` event of a clearance.
    pub fn id_for(kind: EventKind, clearance_id: Uuid) -> Uuid {
        const NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_a7a0_5c1e_4a7e_9c1e_a7a0_0000_0004);
        Uuid::new_v5(&NAMESPACE, format!("{kind}\n{clearance_id}").as_bytes())
    }

    /// The `kind` event of a clearance, with its stable id.
    pub fn new(
        kind: EventKind,
        clearance_id: Uuid,
        job_id: Option<Uuid>,
        treaty_id: &str,
        operator_id: &str,
        row_count: u64,
    ) -> Self {
        Self {
            event_id: Self::id_for(kind, clearance_id),
            kind,
            clearance_id,
            job_id,
            treaty_id: treaty_id.to_owned(),
            operator_id: operator_id.to_owned(),
            row_count,
            error: None,
        }
    }
}

/// Where events go (EventBridge).
pub trait EventPublisher: Send + Sync {
    /// # Errors
    /// MUST return [`BackendError`] when the bus refused the event.
    fn publish(&self, event: &ClearanceEvent) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// The outbox: events the ledger committed and the bus has not yet taken.
/// The ledger's adapters write to it inside their transactions; this is the
/// side that empties it.
pub trait EventOutbox: Send + Sync {
    /// Claims, for `claim_secs`, up to `limit` unpublished events that no
    /// live claim holds, oldest first, and of each clearance only its
    /// oldest unpublished event; `only` restricts the claim to one
    /// clearance. Returned in the order they were committed.
    ///
    /// # Errors
    /// MUST return [`BackendError`] when the outbox cannot be read.
    fn claim(
        &self,
        only: Option<Uuid>,
        limit: u32,
        claim_secs: u32,
    ) -> impl Future<Output = Result<Vec<ClearanceEvent>, BackendError>> + Send;

    /// Marks `published` as published for good, and frees the claims on
    /// `unpublished` so the next drain takes them at once.
    ///
    /// # Errors
    /// MUST return [`BackendError`] unless both were recorded.
    fn settle(
        &self,
        published: &[Uuid],
        unpublished: &[Uuid],
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// What a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events the bus took.
    pub published: u64,
    /// Events claimed but left in the outbox (the bus refused one: the
    /// rest of the round waits for the next drain).
    pub left: u64,
}

/// One round: claims up to `limit` events (of each clearance its oldest
/// unpublished one), publishes them in order until the bus has refused
/// [`ROUND_REFUSALS_MAX`] or the round ran [`ROUND_BUDGET`], and records
/// the outcome.
///
/// # Errors
/// [`BackendError`] when the outbox cannot be read or written; a bus that
/// refuses is not an error of the drain (the events stay for the next).
pub async fn drain_round<O: EventOutbox, P: EventPublisher>(
    outbox: &O,
    bus: &P,
    only: Option<Uuid>,
    limit: u32,
) -> Result<Drained, BackendError> {
    let started = std::time::Instant::now();
    let events = outbox.claim(only, limit, CLAIM_SECS).await?;
    let mut published = Vec::with_capacity(events.len());
    let mut left = Vec::new();
    let mut refusals = 0;
    for event in &events {
        if refusals >= ROUND_REFUSALS_MAX || started.elapsed() > ROUND_BUDGET {
            left.push(event.event_id);
            continue;
        }
        match bus.publish(event).await {
            Ok(()) => published.push(event.event_id),
            Err(e) => {
                refusals += 1;
                tracing::warn!(error = %e, event_id = %event.event_id, kind = %event.kind,
                    clearance_id = %event.clearance_id, "event not published: it stays in the outbox");
                left.push(event.event_id);
            }
        }
    }
    outbox.settle(&published, &left).await?;
    Ok(Drained { published: published.len() as u64, left: left.len() as u64 })
}

/// Drains until the outbox (of `only`, or all of it) is empty, a round
/// publishes nothing or leaves events, `rounds` rounds ran, or
/// [`DRAIN_BUDGET`] passed.
///
/// # Errors
/// As [`drain_round`].
pub async fn drain<O: EventOutbox, P: EventPublisher>(
    outbox: &O,
    bus: &P,
    only: Option<Uuid>,
    rounds: u32,
) -> Result<Drained, BackendError> {
    let started = std::time::Instant::now();
    let mut total = Drained::default();
    for _ in 0..rounds {
        if started.elapsed() > DRAIN_BUDGET {
            break;
        }
        let round = drain_round(outbox, bus, only, DRAIN_BATCH_MAX).await?;
        total.published += round.published;
        total.left += round.left;
        if round.published == 0 || round.left > 0 {
            break;
        }
    }
    Ok(total)
}

/// The drain after a commit, for the clearance it committed: best effort,
/// the scheduled drain takes what is left. Logs and returns what it did.
pub async fn publish_committed<O: EventOutbox, P: EventPublisher>(
    outbox: &O,
    bus: &P,
    clearance_id: Uuid,
) -> Drained {
    match drain(outbox, bus, Some(clearance_id), AFTER_COMMIT_ROUNDS).await {
        Ok(drained) => drained,
        Err(e) => {
            tracing::warn!(error = %e, %clearance_id,
                "the outbox could not be drained after the commit: the scheduled drain publishes its events");
            Drained::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_per_kind_and_clearance() {
        let c = Uuid::from_u128(7);
        assert_eq!(
            ClearanceEvent::id_for(EventKind::ClearancePosted, c),
            ClearanceEvent::id_for(EventKind::ClearancePosted, c)
        );
        assert_ne!(
            ClearanceEvent::id_for(EventKind::ClearancePosted, c),
            ClearanceEvent::id_for(EventKind::ClearanceReversed, c)
        );
        // The id of the first events ever published, kept across versions.
        assert_eq!(
            ClearanceEvent::id_for(EventKind::ClearancePosted, c),
            Uuid::new_v5(
                &Uuid::from_u128(0x6c1e_a7a0_5c1e_4a7e_9c1e_a7a0_0000_0004),
                format!("ClearancePosted\n{c}").as_bytes()
            )
        );
    }

    #[test]
    fn an_event_round_trips_as_json_with_its_kind_by_name() -> serde_json::Result<()> {
        let event =
            ClearanceEvent::new(EventKind::ClearanceReversed, Uuid::from_u128(1), None, "TR-1", "op", 3);
        let json = serde_json::to_value(&event)?;
        assert_eq!(json["kind"], "ClearanceReversed");
        assert_eq!(serde_json::from_value::<ClearanceEvent>(json)?, event);
        Ok(())
    }
}
