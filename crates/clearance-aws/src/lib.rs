//! The one AWS SDK configuration a process builds at start-up. Every client
//! (DynamoDB, Step Functions, EventBridge) is made from it, so each call has
//! the same bounds: an attempt that gets no answer is abandoned after
//! `attempt_timeout`, a call with its retries after `operation_timeout`.
//! A frozen dependency therefore costs a request a bounded time and the
//! caller answers 503, instead of the SDK waiting on a socket until the
//! function itself times out.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;

/// The bounds of every AWS call of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsLimits {
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time one attempt may take (connect, send, answer).
    pub attempt_timeout: Duration,
    /// Time a call may take, all its attempts and backoff included.
    pub operation_timeout: Duration,
    /// Attempts of one call, the first included.
    pub attempts_max: u32,
}

impl Default for AwsLimits {
    /// 1.5 s an attempt, 3 attempts, 4 s a call: a read that meets a frozen
    /// DynamoDB answers 503 in about 4 s, well inside a 29 s function.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            attempt_timeout: Duration::from_millis(1_500),
            operation_timeout: Duration::from_secs(4),
            attempts_max: 3,
        }
    }
}

impl AwsLimits {
    fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    fn retries(&self) -> RetryConfig {
        // Standard mode: exponential backoff with jitter and a retry quota,
        // so a dependency in trouble is not flooded with retries.
        RetryConfig::standard()
            .with_max_attempts(self.attempts_max)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_millis(500))
    }
}

/// The configuration of every AWS client of the process: region,
/// credentials and endpoints from the environment as the SDK reads them
/// (`AWS_ENDPOINT_URL_DYNAMODB` and the like point them at moto locally),
/// with `limits` on every call.
pub async fn sdk_config(limits: AwsLimits) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(limits.timeouts())
        .retry_config(limits.retries())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_bounded_by_the_limits() {
        let limits = AwsLimits::default();
        let timeouts = limits.timeouts();
        assert_eq!(timeouts.operation_timeout(), Some(limits.operation_timeout));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(limits.attempt_timeout));
        assert_eq!(timeouts.connect_timeout(), Some(limits.connect_timeout));
        assert_eq!(limits.retries().max_attempts(), 3);
        assert!(limits.attempt_timeout <= limits.operation_timeout);
    }
}
