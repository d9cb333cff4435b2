//! Who may call an endpoint: static API keys (`gatelet/api-keys`), for fleets without an
//! identity provider, and JWT validation (`auth/validator`). Sans-io: request headers in, a
//! decision out; the dispatch step maps the decision to 401 / 403. Checked before any rate
//! limit (auth, then the client bucket, then the endpoint bucket).

pub mod apikey;
mod curves;
pub mod jwt;

/// Why a request is not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or credentials that are not valid (401).
    Unauthenticated(String),
    /// Valid credentials without a role the endpoint requires (403).
    Forbidden(String),
}
