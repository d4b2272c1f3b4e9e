//! What the deployed system meets (DESIGN.md, Production edges), each
//! against the real components: AWS's own event shapes on a named stage,
//! PostgreSQL over TLS, a browser's CORS preflight, a frozen DynamoDB, a
//! function that cannot start.

mod cors;
mod frozen_dependency;
mod grid_wire;
mod init_errors;
mod postgres_tls;
mod stage_paths;
