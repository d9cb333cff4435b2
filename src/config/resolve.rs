//! Resolution: the one step of loading that reaches outside the config text. After checking
//! (which reads nothing else), it looks up the host names, reads the files the config names
//! (JWK sets, the TLS certificate chain and key, the fleet's `members_file`, whose members are
//! checked here) and expands the fleet headers' `${ENV}` references, then puts what it found
//! in place. Its errors point at the name in the config, like every check's.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

use super::fleet::{MAX_MEMBERS, expand_env, members};
use super::json;
use super::model::{Config, Member, SensorSource, StreamTarget};
#[cfg(feature = "tls")]
use super::validate::TlsFiles;
use super::validate::{Checker, FleetHeader, JwkFile, Lookup, MembersFile, Site, Unresolved};
#[cfg(feature = "tls")]
use crate::tls::BadPem;

/// Resolves what checking left in `c.unresolved` and fills it into `config`, which is `None`
/// when checking failed: resolution still runs, so that one run reports every error. `None`
/// when any error was recorded, by checking or here.
pub fn resolve(c: &mut Checker, config: Option<Config>) -> Option<Config> {
    let todo = std::mem::take(&mut c.unresolved);
    let found = find(c, todo);
    let mut config = config?;
    if !c.errors.is_empty() {
        return None;
    }
    fill(&mut config, found);
    Some(config)
}

/// What resolution found.
struct Found {
    /// Host addresses by authority.
    addrs: HashMap<String, SocketAddr>,
    /// TCP sensors: (sensor name, the authority of its address).
    sensor_addresses: Vec<(String, String)>,
    /// JWK sets: (endpoint index, keys).
    jwk_sets: Vec<(usize, Vec<crate::auth::jwt::Jwk>)>,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The members of `members_file`.
    members: Vec<Member>,
    /// The fleet headers, expanded.
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The outbox's delivery credentials, expanded.
    outbox_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Does the lookups and reads; the errors go to `c`.
fn find(c: &mut Checker, todo: Unresolved) -> Found {
    let mut addrs = HashMap::new();
    let members = todo.members_file.map(|m| members_file(c, m, &mut addrs));
    look_up(c, todo.lookups, &mut addrs);
    let jwk_sets = todo.jwk_sets.into_iter();
    Found {
        addrs,
        sensor_addresses: todo.sensor_addresses,
        jwk_sets: jwk_sets.filter_map(|j| Some((j.endpoint, jwk_set(c, j)?))).collect(),
        #[cfg(feature = "tls")]
        tls: todo.tls.and_then(|t| tls(c, t)),
        members: members.unwrap_or_default(),
        headers: fleet_headers(c, todo.fleet_headers),
        outbox_headers: fleet_headers(c, todo.outbox_headers),
    }
}

/// Puts what was found in place, in a config that checked: every endpoint, sensor and the
/// fleet are there, in config order.
fn fill(config: &mut Config, found: Found) {
    for (endpoint, keys) in found.jwk_sets {
        if let Some(jwt) = config.endpoints.get_mut(endpoint).and_then(|e| e.jwt.as_mut()) {
            jwt.keys = keys;
        }
    }
    #[cfg(feature = "tls")]
    {
        config.tls = found.tls;
    }
    if let Some(fleet) = &mut config.fleet {
        fleet.members.extend(found.members);
        fleet.headers = found.headers;
    }
    let addrs = &found.addrs;
    let backends = config.endpoints.iter_mut().flat_map(|e| &mut e.backends);
    let members = config.fleet.iter_mut().flat_map(|f| &mut f.members);
    if let Some(d) = config.outbox.as_mut().and_then(|o| o.deliver.as_mut()) {
        d.headers = found.outbox_headers;
    }
    let deliver = config.outbox.iter_mut().flat_map(|o| &mut o.deliver);
    let hosts = backends
        .flat_map(|b| &mut b.hosts)
        .chain(members.map(|m| &mut m.host))
        .chain(deliver.map(|d| &mut d.host));
    for host in hosts {
        if let Some(addr) = addrs.get(&host.authority) {
            host.addr = *addr;
        }
    }
    for (name, authority) in found.sensor_addresses {
        let source = config
            .sensors
            .iter_mut()
            .find(|s| s.name == name)
            .map(|s| &mut s.source);
        if let Some(SensorSource::Stream {
            target: StreamTarget::Tcp(addr),
            ..
        }) = source
            && let Some(found) = addrs.get(&authority)
        {
            *addr = *found;
        }
    }
}

/// Looks each name up once (the first address is used), reporting a failure wherever the
/// name is written; the addresses go in `addrs` by authority.
fn look_up(c: &mut Checker, lookups: Vec<Lookup>, addrs: &mut HashMap<String, SocketAddr>) {
    // Why a name has no address, by authority.
    let mut failed: HashMap<String, String> = HashMap::new();
    for l in lookups {
        let name = &l.name;
        if !addrs.contains_key(&l.authority) && !failed.contains_key(&l.authority) {
            match (name.as_str(), l.port).to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(addr)) => {
                    addrs.insert(l.authority.clone(), addr);
                }
                Ok(None) => {
                    failed.insert(l.authority.clone(), format!("\"{name}\" resolves to no address"));
                }
                Err(e) => {
                    failed.insert(l.authority.clone(), format!("cannot resolve \"{name}\": {e}"));
                }
            }
        }
        if let Some(why) = failed.get(&l.authority) {
            c.error(l.at.pos, &l.at.path, format!("\"{}\": {why}", l.entry));
        }
    }
}

/// A file a config names (JWK set, fleet members, TLS key and certificate): a regular file (a
/// FIFO would block start-up or a reload on the one thread), read within
/// [`super::MAX_CONFIG_BYTES`].
fn read_named_file(path: &str) -> Result<String, String> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err("not a regular file".to_string()),
        Ok(_) => super::read_bounded(path),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// Reads, checks and looks up the members in `members_file`; errors inside the file point
/// into the file. The members it adds to the inline ones.
fn members_file(c: &mut Checker, m: MembersFile, addrs: &mut HashMap<String, SocketAddr>) -> Vec<Member> {
    let (file, at) = (&m.file, &m.at);
    let text = match read_named_file(file) {
        Ok(text) => text,
        Err(e) => {
            c.error(at.pos, &at.path, format!("\"{file}\": {e}"));
            return Vec::new();
        }
    };
    let doc = match json::parse(&text) {
        Ok(doc) => doc,
        Err(e) => {
            let message = format!("\"{file}\":{}:{}: {}", e.pos.line, e.pos.col, e.message);
            c.error(at.pos, &at.path, message);
            return Vec::new();
        }
    };
    let mut list = m.inline;
    let inline = list.len();
    let mut inner = Checker::new(file);
    members(&mut inner, &doc, "", &mut list);
    let lookups = std::mem::take(&mut inner.unresolved.lookups);
    look_up(&mut inner, lookups, addrs);
    c.errors.extend(inner.errors);
    // Too many inline members alone were reported by checking.
    if inline <= MAX_MEMBERS && list.len() > MAX_MEMBERS {
        let Site { pos, path } = &m.fleet;
        c.error(*pos, path, format!("{} members: at most {MAX_MEMBERS}", list.len()));
    }
    list.split_off(inline)
}

/// The keys in a validator's JWK set file: read even when its `alg` is invalid, parsed when
/// it is valid.
fn jwk_set(c: &mut Checker, j: JwkFile) -> Option<Vec<crate::auth::jwt::Jwk>> {
    let (file, at) = (&j.file, &j.at);
    let parsed = read_named_file(file).map(|text| j.alg.map(|alg| crate::auth::jwt::parse_jwk_set(&text, alg)));
    match parsed {
        Ok(Some(Ok(keys))) => Some(keys),
        Ok(None) => None,
        Err(e) | Ok(Some(Err(e))) => {
            c.error(at.pos, &at.path, format!("\"{file}\": {e}"));
            None
        }
    }
}

/// The TLS server config from the certificate chain and key files; every error at
/// `public_key`.
#[cfg(feature = "tls")]
fn tls(c: &mut Checker, t: TlsFiles) -> Option<std::sync::Arc<rustls::ServerConfig>> {
    let build = || {
        let (chain, key) = (&t.chain, &t.key);
        let chain_pem =
            read_named_file(chain).map_err(|e| format!("cannot read certificates from \"{chain}\": {e}"))?;
        let key_pem = read_named_file(key).map_err(|e| format!("\"{key}\": {e}"))?;
        crate::tls::server_config(chain_pem.as_bytes(), key_pem.as_bytes(), t.tls13_only).map_err(|e| match e {
            BadPem::Chain(e) => format!("\"{chain}\": {e}"),
            BadPem::NoCertificate => format!("\"{chain}\" holds no certificate"),
            BadPem::Key(e) => format!("\"{key}\": {e}"),
            BadPem::Refused(m) => m,
        })
    };
    build().map_err(|m| c.error(t.at.pos, &t.at.path, m)).ok()
}

/// Headers (the fleet's, the outbox's credentials) with their `${ENV}` references expanded.
fn fleet_headers(c: &mut Checker, headers: Vec<FleetHeader>) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut out = Vec::new();
    for h in headers {
        let at = &h.at;
        match expand_env(&h.template, |v| std::env::var(v).ok()).map(|v| http::HeaderValue::from_str(&v)) {
            Ok(Ok(value)) => out.push((h.name, value)),
            Ok(Err(_)) => c.error(at.pos, &at.path, "not a valid header value once expanded"),
            Err(e) => c.error(at.pos, &at.path, e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;

    /// Names that do not resolve, files that do not exist, a variable that is not set: checking
    /// finds nothing wrong, because it looks at none of them; it lists them for resolution.
    #[test]
    fn checking_reads_nothing_but_the_text() {
        let tls = match cfg!(feature = "tls") {
            true => r#""tls": {"public_key": "/nonexistent/chain.pem", "private_key": "/nonexistent/key.pem"},"#,
            false => "",
        };
        let text = format!(
            r#"{{
              "version": 3,
              "host": ["http://gatelet-test.invalid:8000"],
              {tls}
              "extra_config": {{
                "gatelet/fleet": {{"members_file": "/nonexistent/members.json", "headers": {{"X-Token": "${{UNSET}}"}}}},
                "gatelet/sensors": {{"engine": {{"decode": "text", "tcp": {{"address": "engine.invalid:7000"}}}}}}
              }},
              "endpoints": [{{"endpoint": "/a",
                "extra_config": {{"auth/validator": {{"alg": "HS256", "jwk_local_path": "/nonexistent/keys.json"}}}},
                "backend": [{{"url_pattern": "/"}}]}}]
            }}"#
        );
        let mut c = Checker::new("t.json");
        let checked = validate::config(&mut c, &json::parse(&text).unwrap());
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let checked = checked.unwrap();
        assert!(checked.endpoints[0].backends[0].hosts[0].addr.ip().is_unspecified());
        let todo = &c.unresolved;
        let names: Vec<&str> = todo.lookups.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["gatelet-test.invalid", "engine.invalid"]);
        assert_eq!(todo.sensor_addresses, [("engine".into(), "engine.invalid:7000".into())]);
        assert_eq!(todo.jwk_sets[0].file, "/nonexistent/keys.json");
        assert_eq!(todo.members_file.as_ref().unwrap().file, "/nonexistent/members.json");
        assert_eq!(todo.fleet_headers[0].template, "${UNSET}");
        #[cfg(feature = "tls")]
        assert_eq!(todo.tls.as_ref().unwrap().key, "/nonexistent/key.pem");
    }
}
