//! The syntax of endpoint path templates (`/bus/{id}/status`): which segments are parameters
//! and their names; and of a backend `url_pattern`'s placeholders (`{param}`, `{JWT.claim}`,
//! `{respN_field}`). Checked here, compiled by the router and the backends' URL templates.

/// Whether a path segment of an endpoint pattern is a `{param}`.
pub fn is_param(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
}

/// The `{param}` names of an endpoint path, in order.
pub fn param_names(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| is_param(s)).map(|s| &s[1..s.len() - 1])
}

/// A `url_pattern` placeholder filled per request, beyond the endpoint's `{param}`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `{JWT.claim}`: a claim of the request's token (the endpoint has `auth/validator`); the
    /// name as written, not a path (KrakenD reads top-level claims only here).
    Jwt(String),
    /// `{respN_a.b}` (`sequential` endpoints): the value at the dot path `a.b` of backend `N`'s
    /// answer, as shaped by that backend.
    Resp {
        /// `N`.
        backend: usize,
        /// The dot path, split.
        path: Vec<String>,
    },
}

/// What a `{name}` of a `url_pattern` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder<'a> {
    /// An endpoint `{param}` (its name).
    Param(&'a str),
    /// A value filled per request.
    Var(Var),
    /// `{respN}` without a field: KrakenD's whole `no-op` body (its index).
    WholeResp(usize),
    /// Nothing gatelet knows.
    Unknown,
}

/// What `{name}` refers to, given the endpoint's parameter names (which win a clash).
pub fn placeholder<'a>(name: &'a str, params: &[&str]) -> Placeholder<'a> {
    if params.contains(&name) {
        return Placeholder::Param(name);
    }
    if let Some(claim) = name.strip_prefix("JWT.").filter(|c| !c.is_empty()) {
        return Placeholder::Var(Var::Jwt(claim.to_string()));
    }
    // KrakenD capitalises the first letter of a placeholder, so `Resp0_` works as well.
    let Some(rest) = name.strip_prefix("resp").or_else(|| name.strip_prefix("Resp")) else {
        return Placeholder::Unknown;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(backend) = rest[..digits].parse::<usize>() else {
        return Placeholder::Unknown;
    };
    match rest[digits..].strip_prefix('_') {
        None if digits == rest.len() => Placeholder::WholeResp(backend),
        Some(field) if !field.is_empty() && !field.split('.').any(str::is_empty) => Placeholder::Var(Var::Resp {
            backend,
            path: field.split('.').map(str::to_string).collect(),
        }),
        _ => Placeholder::Unknown,
    }
}

/// The `{name}`s of a `url_pattern`, in order (validation has checked the braces pair up).
pub fn placeholders(pattern: &str) -> impl Iterator<Item = &str> {
    pattern
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
}
