//! Every way a request can fail, and the one place each maps to an HTTP status.
//!
//! Layers below (`endpoint`, `backend`, `proxy`) have their own enums; they convert into [`Error`] here,
//! and [`Error::status`] is the only mapping from failure to status code in gatelet.

use hyper::StatusCode;

use crate::endpoint::EndpointError;
use crate::limiter::bucket::ceil_secs;
use crate::limiter::{Quota, Refusal};
use crate::time::Nanos;

/// A request the gateway answers with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// HTTP/1.1 request without `Host` (RFC 9112 §3.2).
    MissingHost,
    /// More than one `Host` field.
    DuplicateHost,
    /// A `Host` that is not `uri-host [":" port]` (the value).
    BadHost(String),
    /// A `*` request-target on a method other than OPTIONS.
    AsteriskTarget,
    /// A method gatelet does not implement (CONNECT).
    NotImplemented(String),
    /// `Transfer-Encoding` on an HTTP/1.0 request.
    TransferEncodingInHttp10,
    /// `Transfer-Encoding` together with `Content-Length`.
    ContentLengthWithTransferEncoding,
    /// More than one `Transfer-Encoding` field.
    DuplicateTransferEncoding,
    /// A transfer coding other than exactly `chunked` (the value).
    UnsupportedTransferCoding(String),
    /// Request target longer than [`crate::net::limits::MAX_TARGET_BYTES`] (its length).
    TargetTooLong(usize),
    /// More header fields than [`crate::net::limits::MAX_HEADERS`] (their count).
    TooManyHeaders(usize),
    /// Request body over [`crate::net::limits::MAX_BODY_BYTES`].
    BodyTooLarge,
    /// Request body did not arrive in time.
    BodyTimeout,
    /// Request body framing was broken (hyper's message).
    BadBody(String),
    /// A path parameter that would change the backend path (`.` or `..`).
    BadPathParam(String),
    /// No endpoint has this path.
    NotFound,
    /// An endpoint has this path but not this method; the allowed methods.
    MethodNotAllowed(String),
    /// The endpoint failed: all backends failed or timed out.
    Endpoint(EndpointError),
    /// A rate limiter refused the request (`qos/ratelimit/router`).
    RateLimited(Refusal),
    /// A CORS preflight that is not allowed (why).
    CorsDenied(String),
    /// No valid credentials (401).
    Unauthenticated(String),
    /// Valid credentials without the required role (403).
    Forbidden(String),
    /// Time-bound tokens cannot be checked: the clock is known to be unset (503).
    ClockUnsynced,
    /// No endpoint takes the path as it is, but KrakenD's router would redirect it to one
    /// (trailing slash, `//`, letter case): the `Location`, and whether the request was a GET
    /// (301; anything else keeps its method with 307).
    Redirect { location: http::HeaderValue, get: bool },
    /// The body does not pass the endpoint's `validation/json-schema` (400, or 413 when it
    /// holds too many values to check).
    #[cfg(feature = "json-schema")]
    InvalidBody(crate::schema::Invalid),
}

impl From<crate::auth::Denied> for Error {
    fn from(d: crate::auth::Denied) -> Self {
        match d {
            crate::auth::Denied::Unauthenticated(m) => Error::Unauthenticated(m),
            crate::auth::Denied::Forbidden(m) => Error::Forbidden(m),
        }
    }
}

impl From<EndpointError> for Error {
    fn from(e: EndpointError) -> Self {
        Error::Endpoint(e)
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::RateLimited(r)
    }
}

impl Error {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MissingHost
            | Error::DuplicateHost
            | Error::BadHost(_)
            | Error::AsteriskTarget
            | Error::TransferEncodingInHttp10
            | Error::DuplicateTransferEncoding
            | Error::ContentLengthWithTransferEncoding
            | Error::BadBody(_)
            | Error::BadPathParam(_)
            | Error::Endpoint(EndpointError::BadWrite(_)) => StatusCode::BAD_REQUEST,
            Error::UnsupportedTransferCoding(_) | Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::CorsDenied(_) | Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::ClockUnsynced => StatusCode::SERVICE_UNAVAILABLE,
            Error::TargetTooLong(_) => StatusCode::URI_TOO_LONG,
            Error::TooManyHeaders(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Endpoint(EndpointError::Failed(_)) => StatusCode::BAD_GATEWAY,
            Error::Endpoint(EndpointError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            Error::Endpoint(EndpointError::Unavailable(..)) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Endpoint(EndpointError::Status(_, reply)) => {
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Error::Endpoint(EndpointError::Refused(status, _)) => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
            Error::RateLimited(Refusal::Endpoint { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Error::RateLimited(Refusal::Client { .. } | Refusal::NoClientKey) => StatusCode::TOO_MANY_REQUESTS,
            Error::Redirect { get: true, .. } => StatusCode::MOVED_PERMANENTLY,
            Error::Redirect { get: false, .. } => StatusCode::TEMPORARY_REDIRECT,
            #[cfg(feature = "json-schema")]
            Error::InvalidBody(crate::schema::Invalid::TooManyValues) => StatusCode::PAYLOAD_TOO_LARGE,
            #[cfg(feature = "json-schema")]
            Error::InvalidBody(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Whole seconds for `Retry-After`, for the errors that have one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Endpoint(EndpointError::Unavailable(_, retry)) => Some(*retry),
            Error::ClockUnsynced => Some(30),
            _ => self.rate_limit().map(|(_, ns)| ceil_secs(ns)),
        }
    }

    /// For a rate-limit refusal: the bucket's numbers and the nanoseconds until a token.
    pub fn rate_limit(&self) -> Option<(Quota, Nanos)> {
        match self {
            Error::RateLimited(Refusal::Client { quota, retry_after } | Refusal::Endpoint { quota, retry_after }) => {
                Some((*quota, *retry_after))
            }
            _ => None,
        }
    }

    /// Whether the connection must be closed after the answer: framing errors leave the
    /// stream in an unknown state, so nothing more is read from it.
    pub fn closes(&self) -> bool {
        #[cfg(feature = "json-schema")]
        if let Error::InvalidBody(_) = self {
            return false;
        }
        !matches!(
            self,
            Error::NotFound
                | Error::MethodNotAllowed(_)
                | Error::BadPathParam(_)
                | Error::Endpoint(_)
                | Error::RateLimited(_)
                | Error::CorsDenied(_)
                | Error::Unauthenticated(_)
                | Error::Forbidden(_)
                | Error::ClockUnsynced
                | Error::Redirect { .. }
        )
    }

    /// The client-facing message. Backend details only when `return_error_msg` is set.
    pub fn message(&self, return_error_msg: bool) -> String {
        match self {
            Error::MissingHost => "missing Host header".into(),
            Error::DuplicateHost => "more than one Host header".into(),
            Error::BadHost(h) => format!("invalid Host header {h:?}"),
            Error::AsteriskTarget => "the request target * is only for OPTIONS".into(),
            Error::NotImplemented(m) => format!("method {m} is not implemented"),
            Error::TransferEncodingInHttp10 => "Transfer-Encoding is not allowed in HTTP/1.0".into(),
            Error::DuplicateTransferEncoding => "more than one Transfer-Encoding header".into(),
            Error::ContentLengthWithTransferEncoding => "Content-Length together with Transfer-Encoding".into(),
            Error::UnsupportedTransferCoding(v) => format!("unsupported transfer coding {v:?}: only chunked"),
            Error::TooManyHeaders(n) => {
                format!(
                    "{n} header fields; at most {} are accepted",
                    crate::net::limits::MAX_HEADERS
                )
            }
            Error::TargetTooLong(n) => format!(
                "request target of {n} bytes is over the {} limit",
                crate::net::limits::MAX_TARGET_BYTES
            ),
            Error::BodyTooLarge => format!("request body over {} bytes", crate::net::limits::MAX_BODY_BYTES),
            Error::BodyTimeout => "request body did not arrive in time".into(),
            Error::BadBody(m) => format!("malformed request body: {m}"),
            Error::BadPathParam(p) => format!("path parameter {p:?} is not allowed"),
            Error::NotFound => "no endpoint at this path".into(),
            Error::MethodNotAllowed(allow) => format!("method not allowed; allowed: {allow}"),
            Error::Endpoint(EndpointError::BadWrite(m) | EndpointError::Refused(_, m)) => m.clone(),
            Error::Endpoint(e) if return_error_msg => e.to_string(),
            Error::Endpoint(EndpointError::Failed(_)) => "all backends failed".into(),
            Error::Endpoint(EndpointError::Timeout(_)) => "the endpoint timed out".into(),
            Error::Endpoint(EndpointError::Status(_, reply)) => format!("backend status {}", reply.status),
            Error::Endpoint(EndpointError::Unavailable(_, retry)) => {
                format!("sensor data unavailable; retry in {retry} s")
            }
            Error::RateLimited(Refusal::Client { retry_after, .. }) => {
                format!(
                    "too many requests from this client; retry in {} s",
                    ceil_secs(*retry_after)
                )
            }
            Error::RateLimited(Refusal::Endpoint { retry_after, .. }) => {
                format!(
                    "the endpoint is at its rate limit; retry in {} s",
                    ceil_secs(*retry_after)
                )
            }
            Error::CorsDenied(m) | Error::Unauthenticated(m) | Error::Forbidden(m) => m.clone(),
            Error::ClockUnsynced => {
                "the clock is not synchronised yet: tokens cannot be checked (gatelet/jwt.unsynced_clock)".into()
            }
            Error::RateLimited(Refusal::NoClientKey) => "the request lacks the key clients are limited by".into(),
            Error::Redirect { location, .. } => {
                format!("moved to {}", String::from_utf8_lossy(location.as_bytes()))
            }
            #[cfg(feature = "json-schema")]
            Error::InvalidBody(why) => why.to_string(),
        }
    }
}
