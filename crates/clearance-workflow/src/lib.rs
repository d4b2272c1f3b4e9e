//! Batch orchestration adapters (ADR 0006): the Step Functions starter used
//! in AWS, the EventBridge publisher, and the in-process runner that runs
//! the same steps in the same order with the same retry policy locally.

pub mod events;
pub mod runner;
pub mod sfn;
pub mod task;

pub use events::EventBridgePublisher;
pub use runner::{run_job, LocalRunner, RunOutcome, RunPolicy, PRODUCTION};
pub use sfn::StepFunctionsStarter;
