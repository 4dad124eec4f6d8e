//! JSON bodies of the operator routes: webhooks and the audit log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Header carrying the hex HMAC-SHA256 of a webhook body, keyed by the webhook's secret (as the
/// original sends it).
pub const SIGNATURE_HEADER: &str = "X-Koor-Signature";
/// Header the original sets on every webhook delivery (`true`).
pub const EVENT_HEADER: &str = "X-Koor-Event";
/// (ext) Header naming one delivery: the same on every retry of one event to one webhook, so a
/// receiver can drop duplicates.
pub const DELIVERY_HEADER: &str = "X-Koor-Delivery";
/// (ext) Header carrying the delivered event's id.
pub const EVENT_ID_HEADER: &str = "X-Koor-Event-Id";
/// (ext) Header naming the webhook a delivery is for.
pub const WEBHOOK_HEADER: &str = "X-Koor-Webhook";

/// `POST /api/webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWebhook {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub secret: String,
}

/// One webhook as `GET /api/webhooks` lists it. The secret is never sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub patterns: Vec<String>,
    pub active: bool,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<String>,
    /// Consecutive failed attempts (0 after a success).
    pub fail_count: i64,
    /// (ext) Whether deliveries are signed.
    #[serde(default)]
    pub has_secret: bool,
    /// (ext) Id of the newest event handled (delivered, or not matching the patterns).
    #[serde(default)]
    pub last_event_id: i64,
    /// (ext) Events delivered since the webhook was created.
    #[serde(default)]
    pub delivered: i64,
    /// (ext) When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// (ext) HTTP status of the last attempt (absent when the receiver could not be reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    /// (ext) Why the last attempt failed; absent after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Webhook {
    /// `ok`, `failing` (retrying after errors) or `disabled`.
    pub fn health(&self) -> &'static str {
        if !self.active {
            "disabled"
        } else if self.fail_count > 0 {
            "failing"
        } else {
            "ok"
        }
    }
}

/// One audit log entry (`GET /api/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub timestamp: String,
    /// The instance that made the change when known, else the remote address.
    pub actor: String,
    /// `state.put`, `spec.delete`, `event.publish`, `webhook.create`, ...
    pub action: String,
    pub resource: String,
    /// A JSON document with details (the original's field).
    pub detail: String,
    /// `success`, `denied` (401/403) or `error`.
    pub outcome: String,
    /// (ext) HTTP status of the reply.
    #[serde(default)]
    pub status: i64,
    /// (ext) Request method and path.
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path: String,
    /// (ext) Remote address of the request.
    #[serde(default)]
    pub remote: String,
    /// (ext) Whether the request carried the server's bearer token (the token itself is never
    /// recorded).
    #[serde(default)]
    pub token_used: bool,
}

/// `GET /api/audit/summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSummary {
    pub total_entries: i64,
    pub action_counts: BTreeMap<String, i64>,
    pub outcome_counts: BTreeMap<String, i64>,
    pub unique_actors: i64,
    pub unique_resources: i64,
}
