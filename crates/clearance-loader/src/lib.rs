//! Where ledger data comes from: a deterministic generator of realistic
//! treaty transactions, and the reader of upstream CSV files. Both yield
//! validated [`clearance_core::UpstreamTransaction`]s for
//! [`clearance_pg::load::load`].

pub mod csv_source;
pub mod generate;
