//! The domain of cash clearance: identifiers, accounting periods, money and
//! the upstream transaction record, with the rules that make each valid.
//!
//! This crate does no IO. Adapters (PostgreSQL, DynamoDB, the loader) convert
//! their rows and files into these types at the edge, and every value that
//! exists here has already passed its validation.

pub mod access;
pub mod batch;
pub mod clearance;
pub mod closes;
pub mod idempotency;
pub mod ids;
pub mod money;
pub mod outbox;
pub mod pages;
pub mod period;
pub mod ports;
pub mod read;
pub mod selection;
pub mod snapshot;
pub mod suggest;
pub mod text;
pub mod tolerance;
pub mod transaction;
pub mod views;
pub mod write;

pub use ids::{CedentId, TransactionId, TreatyId};
pub use money::{Amount, Currency};
pub use period::Period;
pub use transaction::{FieldError, LedgerRow, TxnStatus, UpstreamTransaction};
