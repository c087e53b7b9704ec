//! A log of the requests the double answered, so tests can check how a client talked to it
//! (for example that status is written with server-side apply by one field manager).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Requests kept; older ones are forgotten.
const LOG_LIMIT: usize = 10_000;

/// One request and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string (percent-encoded), empty when absent.
    pub query: String,
    /// `Content-Type` of the request body, empty when absent.
    pub content_type: String,
    /// Response status; `None` when a fault dropped the connection.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// Whether the query has `key=value` (values compared percent-encoded).
    pub fn has_query(&self, key: &str, value: &str) -> bool {
        self.query
            .split('&')
            .any(|pair| pair.split_once('=') == Some((key, value)))
    }
}

/// The bounded log.
#[derive(Debug, Default)]
pub(crate) struct RequestLog(Mutex<VecDeque<RecordedRequest>>);

impl RequestLog {
    pub fn record(&self, request: RecordedRequest) {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() == LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(request);
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        let log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
