//! Starting a job's Step Functions execution. The execution name is the job
//! id, so a second start of the same job is refused by Step Functions and
//! taken here as done.

use aws_sdk_sfn::Client;
use clearance_core::batch::JobStarter;
use clearance_core::ports::BackendError;
use uuid::Uuid;

#[derive(Clone)]
pub struct StepFunctionsStarter {
    client: Client,
    state_machine_arn: String,
}

impl StepFunctionsStarter {
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
        Self { client, state_machine_arn: state_machine_arn.into() }
    }

    /// A client made from the process's one SDK configuration.
    pub fn client(sdk: &aws_config::SdkConfig) -> Client {
        Client::new(sdk)
    }
}

impl JobStarter for StepFunctionsStarter {
    async fn start(&self, job_id: Uuid) -> Result<(), BackendError> {
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(job_id.to_string())
            .input(serde_json::json!({ "job_id": job_id }).to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(aws_sdk_sfn::error::SdkError::ServiceError(e)) if e.err().is_execution_already_exists() => {
                Ok(())
            }
            Err(e) => Err(BackendError::new(e)),
        }
    }
}
