use std::collections::BTreeMap;

use super::{AppId, Timestamp, Uid};

/// Free-form string pairs the API user attaches to applications and endpoints.
pub type Metadata = BTreeMap<String, String>;

/// One customer of the product sending webhooks; owns endpoints and messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: AppId,
    pub uid: Option<Uid>,
    pub name: String,
    /// Deliveries per second allowed to each of its endpoints, if limited.
    pub rate_limit: Option<u16>,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
