//! The syntax of endpoint path templates (`/bus/{id}/status`): which segments are parameters
//! and their names. Checked here, compiled by the router and the backends' URL templates.

/// Whether a path segment of an endpoint pattern is a `{param}`.
pub fn is_param(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
}

/// The `{param}` names of an endpoint path, in order.
pub fn param_names(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| is_param(s)).map(|s| &s[1..s.len() - 1])
}
