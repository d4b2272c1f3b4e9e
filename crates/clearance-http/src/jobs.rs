//! The job-status API: `GET /v1/jobs/{id}`, one consistent read of the job's
//! status item, for its owner only.

use bytes::Bytes;
use clearance_core::batch::JobStore;
use http::{Method, Response, StatusCode};

use crate::{identity, json_response, method_not_allowed, route_not_found, wire, Api, ApiError, ApiRequest};

pub struct JobsApi<J> {
    jobs: J,
}

impl<J: JobStore> JobsApi<J> {
    pub fn new(jobs: J) -> Self {
        Self { jobs }
    }

    pub fn serves(path: &str) -> bool {
        crate::serves_jobs(path)
    }

    async fn route(&self, request: ApiRequest<'_>) -> Result<Response<Bytes>, ApiError> {
        let segments: Vec<&str> = request.path.trim_end_matches('/').split('/').skip(1).collect();
        match (request.method, segments.as_slice()) {
            (&Method::GET, ["v1", "jobs", id]) => {
                let who = identity(request.identity)?;
                let id = clearance_core::text::parse_uuid(id).ok_or_else(|| {
                    ApiError::new("invalid_job_id", "a job id is a lower-case hyphenated UUID")
                        .with_field("id")
                })?;
                let not_found = || ApiError::new("job_not_found", "no such job for you").with_field("id");
                let job = self
                    .jobs
                    .status(id)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "job store unavailable");
                        ApiError::new("backend_unavailable", "a backend is unavailable: retry shortly")
                    })?
                    .filter(|job| job.owner == who.operator && who.entitlement.allows(&job.treaty_id))
                    .ok_or_else(not_found)?;
                Ok(json_response(StatusCode::OK, wire::job_body(&job)))
            }
            (_, ["v1", "jobs", _]) => Err(method_not_allowed("GET")),
            _ => Err(route_not_found()),
        }
    }
}

impl<J: JobStore> Api for JobsApi<J> {
    fn serves(&self, path: &str) -> bool {
        Self::serves(path)
    }

    async fn handle(&self, request: ApiRequest<'_>) -> Response<Bytes> {
        match self.route(request).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }
}
