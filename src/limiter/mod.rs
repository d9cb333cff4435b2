//! Rate limiting: the integer token bucket ([`bucket`]) and the bounded per-client table
//! ([`table`]). Both are sans-io: time is passed in as nanoseconds since a start instant.
//! Nothing here allocates on the path of a request that hits an existing bucket.

pub mod bucket;
pub mod table;
