//! Deliveries (one per message and endpoint) and the attempts made for them.

use std::collections::BTreeMap;
use std::fmt;

use super::retry::PolicySource;
use super::{AppId, AttemptId, EndpointId, MessageId, Timestamp};

/// Where a delivery stands; the numbers are the contract's `MessageStatus` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// The endpoint accepted it (2xx).
    Success = 0,
    /// Waiting for its next attempt (or parked while the endpoint is disabled).
    Pending = 1,
    /// Given up: retries exhausted, or the endpoint answered 410 Gone.
    Fail = 2,
    /// An attempt is in flight (claimed under a lease).
    Sending = 3,
}

impl DeliveryStatus {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::Pending,
            2 => Self::Fail,
            3 => Self::Sending,
            _ => return None,
        })
    }

    /// The contract's `statusText`.
    pub fn text(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Pending => "pending",
            Self::Fail => "fail",
            Self::Sending => "sending",
        }
    }
}

/// What started an attempt; the contract's `MessageAttemptTriggerType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled = 0,
    /// A resend or recovery asked for through the API.
    Manual = 1,
}

impl Trigger {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Self {
        if code == 1 {
            Self::Manual
        } else {
            Self::Scheduled
        }
    }
}

/// Why an attempt failed without a usable answer, or with a non-2xx one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Timeout,
    Connect,
    Dns,
    Tls,
    /// The address is in a range hookd refuses to connect to (see `allowed_networks`).
    SsrfRefused,
    /// The endpoint answered with a status other than 2xx.
    HttpStatus,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::SsrfRefused => "ssrf_refused",
            Self::HttpStatus => "http_status",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "timeout" => Self::Timeout,
            "connect" => Self::Connect,
            "dns" => Self::Dns,
            "tls" => Self::Tls,
            "ssrf_refused" => Self::SsrfRefused,
            "http_status" => Self::HttpStatus,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP request made to deliver a message to an endpoint, and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub app_id: AppId,
    /// The URL as it was when the attempt was made.
    pub url: String,
    /// `Success` for a 2xx, otherwise `Fail`.
    pub status: DeliveryStatus,
    /// 0 when there was no response.
    pub response_status_code: u16,
    /// The start of the response body, capped at `max_response_body_bytes`.
    pub response_body: String,
    pub response_headers: BTreeMap<String, String>,
    /// For a failed attempt, the headers hookd set on the request (see
    /// `delivery::sender::SendResult`); empty for one that succeeded, when no request was
    /// made, and for attempts recorded before hookd kept them.
    pub request_headers: BTreeMap<String, String>,
    pub duration_ms: u64,
    pub trigger: Trigger,
    pub error: Option<AttemptError>,
    pub created_at: Timestamp,
    /// The retry policy the attempt ran under, and its timeout (`None` for attempts made
    /// before hookd recorded them).
    pub policy: Option<PolicySource>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    pub class: ErrorClass,
    pub message: String,
}

/// Deliveries counted by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub success: u64,
    pub pending: u64,
    pub fail: u64,
    pub sending: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_round_trip() {
        for s in [
            DeliveryStatus::Success,
            DeliveryStatus::Pending,
            DeliveryStatus::Fail,
            DeliveryStatus::Sending,
        ] {
            assert_eq!(DeliveryStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(DeliveryStatus::from_code(9), None);
    }

    #[test]
    fn error_classes_round_trip() {
        for c in [
            ErrorClass::Timeout,
            ErrorClass::Connect,
            ErrorClass::Dns,
            ErrorClass::Tls,
            ErrorClass::SsrfRefused,
            ErrorClass::HttpStatus,
        ] {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
        }
    }
}
