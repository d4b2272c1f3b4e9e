//! Clearance events on an EventBridge bus: source `clearance`, detail type
//! the event kind, detail the event as JSON with its stable `event_id`.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use clearance_core::outbox::{ClearanceEvent, EventPublisher};
use clearance_core::ports::BackendError;

pub const EVENT_SOURCE: &str = "clearance";

#[derive(Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }

    /// A client made from the process's one SDK configuration (its
    /// timeouts and retries; `AWS_ENDPOINT_URL_EVENTBRIDGE` locally).
    pub fn client(sdk: &aws_config::SdkConfig) -> Client {
        Client::new(sdk)
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, event: &ClearanceEvent) -> Result<(), BackendError> {
        let detail = serde_json::to_string(event).map_err(BackendError::new)?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(event.kind.as_str())
            .detail(detail)
            .resources(format!("clearance/{}", event.clearance_id))
            .build();
        let out = self.client.put_events().entries(entry).send().await.map_err(BackendError::new)?;
        if out.failed_entry_count > 0 {
            let why = out.entries().iter().filter_map(|e| e.error_message()).collect::<Vec<_>>().join("; ");
            return Err(BackendError::new(format!("the bus refused event {}: {why}", event.event_id)));
        }
        Ok(())
    }
}

/// Creates the bus unless it exists (the local stack and tests; in AWS the
/// template creates it).
///
/// # Errors
/// When the bus can be neither found nor created.
pub async fn ensure_bus(client: &Client, bus: &str) -> Result<(), BackendError> {
    if client.describe_event_bus().name(bus).send().await.is_ok() {
        return Ok(());
    }
    client.create_event_bus().name(bus).send().await.map_err(BackendError::new)?;
    Ok(())
}
