//! The JSON error body every failing route returns.

use serde::{Deserialize, Serialize};

/// `{"error": "<message>", "code": <http status>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: u16,
    /// (ext) On a 412, the current version of the key, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

impl ErrorBody {
    pub fn new(code: u16, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            code,
            current_version: None,
        }
    }
}
