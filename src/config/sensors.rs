//! `extra_config."gatelet/sensors"` (service) and `extra_config."gatelet/sensor"` (backend):
//! sensor definitions and the backends that read them. Same rules as the rest of the config:
//! every key known, every value checked, every error with its path and position.

use std::time::Duration;

use super::json::{Node, Value};
use super::model::{ListenAddr, Parity, Sensor, SensorBackend, SensorSource, SerialSettings, StreamTarget};
use super::validate::{Checker, Site, choice, host, join};

/// Which decoder a sensor uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Decode {
    /// The frame as a trimmed UTF-8 string.
    Text,
    /// One number, optionally multiplied by `scale` (e.g. 0.001 for millidegrees).
    Number { scale: Option<f64> },
    /// A whole JSON document.
    Json,
    /// One JSON document per line; blank lines are skipped.
    JsonLines,
    /// `key=value` or `key: value` lines (as `/proc/meminfo`): an object; values that are
    /// numbers become numbers.
    Kv,
    /// NMEA 0183 sentences merged into one GPS fix.
    Nmea(Checksum),
}

/// Whether a sentence must carry `*HH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// `"require"`: a sentence without a checksum is bad.
    Require,
    /// `"allow_missing"`: checked when present.
    AllowMissing,
}

/// Largest `events.capacity` (each event is held in memory).
pub const MAX_EVENTS: i64 = 65_536;

/// Default `max_frame`.
pub const DEFAULT_MAX_FRAME: usize = 4096;
/// Largest `max_frame` (a frame is held in memory whole).
pub const MAX_MAX_FRAME: i64 = 1 << 20;

/// Sources KrakenD users will look for that gatelet has not implemented yet.
/// Default and largest `max_pushers` of a `listen` source.
pub const MAX_PUSHERS: (usize, i64) = (8, 64);

/// Baud rates termios can set.
const BAUDS: [u32; 12] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000,
];

/// Default `reconnect_min` / `reconnect_max`.
pub const DEFAULT_RECONNECT: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// Parses the service's sensors: the valid ones, and every name defined (so that a backend
/// naming an invalid sensor is not told it does not exist).
pub fn sensors(c: &mut Checker, node: &Node, path: &str) -> (Vec<Sensor>, Vec<String>) {
    let Some(mut obj) = c.object(node, path) else {
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut names = Vec::new();
    for (key, value) in obj.rest() {
        names.push(key.name.clone());
        let p = join(path, &key.name);
        if key.name.is_empty()
            || !key
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            c.error(
                key.pos,
                &p,
                format!("sensor name \"{}\" must be letters, digits, '_' or '-'", key.name),
            );
            continue;
        }
        if let Some(s) = sensor(c, &key.name, value, &p) {
            out.push(s);
        }
    }
    obj.finish(c);
    (out, names)
}

fn sensor(c: &mut Checker, name: &str, node: &Node, path: &str) -> Option<Sensor> {
    let mut obj = c.object(node, path)?;
    let errors_before = c.errors.len();
    let kind = obj.require(c, "decode", "text, number, json, json-lines, kv or nmea");
    let scale = obj.take("scale");
    let checksum = obj.take("checksum");
    let decode = kind.and_then(|(n, p)| match c.string(n, &p)? {
        "text" => Some(Decode::Text),
        "number" => Some(Decode::Number { scale: None }),
        "json" => Some(Decode::Json),
        "json-lines" => Some(Decode::JsonLines),
        "kv" => Some(Decode::Kv),
        "nmea" => Some(Decode::Nmea(Checksum::Require)),
        other => {
            c.error(
                n.pos,
                &p,
                format!("unknown decode \"{other}\" (text, number, json, json-lines, kv, nmea)"),
            );
            None
        }
    });
    let decode = match (decode, scale) {
        (Some(Decode::Number { .. }), Some((n, p))) => match &n.value {
            Value::Number(t) => match t.parse::<f64>() {
                Ok(v) if v.is_finite() && v != 0.0 => Some(Decode::Number { scale: Some(v) }),
                _ => {
                    c.error(n.pos, &p, format!("scale {t} must be a finite number other than 0"));
                    None
                }
            },
            _ => {
                c.error(n.pos, &p, format!("expected a number, found {}", n.value.kind()));
                None
            }
        },
        (_, Some((n, p))) => {
            c.error(n.pos, &p, "has no effect without decode \"number\"");
            None
        }
        (d, None) => d,
    };
    let decode = match (decode, checksum) {
        (Some(Decode::Nmea(_)), Some((n, p))) => {
            let checksums = [
                ("require", Checksum::Require),
                ("allow_missing", Checksum::AllowMissing),
            ];
            choice(c, n, &p, "checksum", &checksums, &[]).map(Decode::Nmea)
        }
        (_, Some((n, p))) => {
            c.error(n.pos, &p, "has no effect without decode \"nmea\"");
            None
        }
        (d, None) => d,
    };
    let max_age = obj.optional(c, "max_age", None, |c, n, p| c.positive_duration(n, p).map(Some));
    let key = obj.optional(c, "key", None, |c, n, p| c.nonempty(n, p).map(|k| Some(k.to_string())));
    let max_frame = obj.optional(c, "max_frame", DEFAULT_MAX_FRAME, |c, n, p| {
        c.integer(n, p, 16, MAX_MAX_FRAME).map(|v| v as usize)
    });
    let mut forward = Some(None);
    let events = obj.optional(c, "events", None, |c, n, p| {
        let mut e = c.object(n, p)?;
        let capacity = e
            .require(c, "capacity", "events kept, e.g. 256")
            .and_then(|(n, p)| c.integer(n, &p, 1, MAX_EVENTS));
        let fwd = e.optional(c, "forward", false, Checker::boolean);
        let critical = e.optional(c, "critical", false, Checker::boolean);
        if let (Some(false), Some(true), Some((n, p))) = (fwd, critical, e.take("critical")) {
            c.error(n.pos, &p, "has no effect without \"forward\": true");
        }
        forward = fwd.zip(critical).map(|(f, crit)| f.then_some(crit));
        if forward.flatten().is_some() {
            c.unresolved.forwarding_sensors.push(Site::new(n.pos, p));
        }
        e.finish(c);
        capacity.map(|v| Some(v as usize))
    });
    if let (Some(Some(_)), Some(Some(_))) = (&events, &key) {
        c.error(
            obj.pos,
            path,
            "\"key\" and \"events\" do not mix: an event ring keeps every frame",
        );
    }
    let mut source = None;
    let mut sources = 0;
    if let Some((n, p)) = obj.take("file") {
        sources += 1;
        source = file(c, n, &p);
    }
    let reconnect_min = obj
        .take("reconnect_min")
        .map(|(n, p)| (c.positive_duration(n, &p), n.pos, p));
    let reconnect_max = obj
        .take("reconnect_max")
        .map(|(n, p)| (c.positive_duration(n, &p), n.pos, p));
    let mut reconnect = Some(DEFAULT_RECONNECT);
    if let Some((d, _, _)) = &reconnect_min {
        reconnect = reconnect.zip(*d).map(|((_, max), min)| (min, max));
    }
    if let Some((d, pos, p)) = &reconnect_max {
        reconnect = reconnect.zip(*d).map(|((min, _), max)| (min, max));
        if let Some((min, max)) = reconnect
            && max < min
        {
            c.error(*pos, p, "must not be less than reconnect_min");
            reconnect = None;
        }
    }
    for kind in ["tcp", "unix", "serial"] {
        if let Some((n, p)) = obj.take(kind) {
            sources += 1;
            let target = match kind {
                "serial" => serial(c, n, &p).map(|t| (t, None)),
                _ => stream(c, name, n, &p, kind == "tcp"),
            };
            source = target
                .zip(reconnect)
                .map(|((target, send_on_connect), (min, max))| SensorSource::Stream {
                    target,
                    send_on_connect,
                    reconnect_min: min,
                    reconnect_max: max,
                });
        }
    }
    if sources == 1 && !matches!(source, Some(SensorSource::Stream { .. }) | None) {
        for (_, pos, p) in [reconnect_min, reconnect_max].into_iter().flatten() {
            c.error(
                pos,
                &p,
                "has no effect without a \"tcp\", \"unix\" or \"serial\" source",
            );
        }
    }
    if let Some((n, p)) = obj.take("listen") {
        sources += 1;
        source = listen(c, n, &p);
    }
    match sources {
        0 => c.error(
            obj.pos,
            path,
            "needs a source: \"file\", \"tcp\", \"unix\", \"serial\" or \"listen\"",
        ),
        1 => {}
        _ => c.error(obj.pos, path, "has more than one source"),
    }
    obj.finish(c);
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Sensor {
        name: name.to_string(),
        decode: decode?,
        max_age: max_age?,
        key: key?,
        max_frame: max_frame?,
        events: events?,
        forward: forward?,
        source: source?,
    })
}

fn file(c: &mut Checker, node: &Node, path: &str) -> Option<SensorSource> {
    let mut obj = c.object(node, path)?;
    let file = obj
        .require(c, "path", "the file to read")
        .and_then(|(n, p)| c.nonempty(n, &p));
    let follow = [("read", false), ("follow", true)];
    let mode = obj.optional(c, "mode", false, |c, n, p| choice(c, n, p, "mode", &follow, &[]));
    let interval = obj.optional(c, "interval", Duration::from_secs(1), Checker::positive_duration);
    obj.finish(c);
    let (path, interval) = (file?.into(), interval?);
    Some(match mode? {
        false => SensorSource::FileRead { path, interval },
        true => SensorSource::FileFollow { path, interval },
    })
}

/// `"listen": {"address": "127.0.0.1:7000" | "unix:/path", "max_pushers"}`.
fn listen(c: &mut Checker, node: &Node, path: &str) -> Option<SensorSource> {
    let mut obj = c.object(node, path)?;
    let address = obj
        .require(c, "address", "\"127.0.0.1:7000\" or \"unix:/path\"")
        .and_then(|(n, p)| {
            let a = c.nonempty(n, &p)?;
            if let Some(path) = a.strip_prefix("unix:") {
                return Some(ListenAddr::Unix(path.into()));
            }
            match a.parse::<std::net::SocketAddr>() {
                Ok(addr) => Some(ListenAddr::Tcp(addr)),
                Err(_) => {
                    c.error(n.pos, &p, format!("\"{a}\" is not ip:port or unix:/path"));
                    None
                }
            }
        });
    let max_pushers = obj.optional(c, "max_pushers", MAX_PUSHERS.0, |c, n, p| {
        c.integer(n, p, 1, MAX_PUSHERS.1).map(|v| v as usize)
    });
    obj.finish(c);
    Some(SensorSource::Listen {
        address: address?,
        max_pushers: max_pushers?,
    })
}

/// `"serial": {"device", "baud", "data_bits", "parity", "stop_bits"}`.
fn serial(c: &mut Checker, node: &Node, path: &str) -> Option<StreamTarget> {
    let mut obj = c.object(node, path)?;
    let device = obj
        .require(c, "device", "e.g. /dev/ttyUSB0")
        .and_then(|(n, p)| c.nonempty(n, &p));
    let baud = obj.optional(c, "baud", 9600, |c, n, p| {
        let b = c.integer(n, p, 1, i64::from(u32::MAX))? as u32;
        if !BAUDS.contains(&b) {
            c.error(n.pos, p, format!("{b} is not a standard baud rate ({BAUDS:?})"));
            return None;
        }
        Some(b)
    });
    let data_bits = obj.optional(c, "data_bits", 8, |c, n, p| c.integer(n, p, 5, 8).map(|v| v as u8));
    let parities = [("none", Parity::None), ("even", Parity::Even), ("odd", Parity::Odd)];
    let parity = obj.optional(c, "parity", Parity::None, |c, n, p| {
        choice(c, n, p, "parity", &parities, &[])
    });
    let stop_bits = obj.optional(c, "stop_bits", 1, |c, n, p| c.integer(n, p, 1, 2).map(|v| v as u8));
    obj.finish(c);
    let settings = SerialSettings {
        baud: baud?,
        data_bits: data_bits?,
        parity: parity?,
        stop_bits: stop_bits?,
    };
    Some(StreamTarget::Serial(device?.into(), settings))
}

/// `"tcp": {"address", "send_on_connect"}` / `"unix": {"path", "send_on_connect"}`.
/// `sensor` is the sensor's name: a TCP address that is a host name is resolved later.
fn stream(c: &mut Checker, sensor: &str, node: &Node, path: &str, tcp: bool) -> Option<(StreamTarget, Option<String>)> {
    let mut obj = c.object(node, path)?;
    let target = if tcp {
        obj.require(c, "address", "host:port").and_then(|(n, p)| {
            let address = c.nonempty(n, &p)?;
            let host = host(c, address, n.pos, &p)?;
            let named = (sensor.to_string(), host.authority);
            c.unresolved.sensor_addresses.push(named);
            Some(StreamTarget::Tcp(host.addr))
        })
    } else {
        obj.require(c, "path", "the socket path")
            .and_then(|(n, p)| c.nonempty(n, &p).map(|s| StreamTarget::Unix(s.into())))
    };
    let send = obj.optional(c, "send_on_connect", None, |c, n, p| {
        c.string(n, p).map(|s| Some(s.to_string()))
    });
    obj.finish(c);
    Some((target?, send?))
}

/// A backend's `"gatelet/sensor": {"name", "reject_stale"}`, resolved against `sensors`.
pub fn backend(
    c: &mut Checker,
    node: &Node,
    path: &str,
    sensors: &[Sensor],
    names: &[String],
    method: &http::Method,
) -> Option<SensorBackend> {
    let mut obj = c.object(node, path)?;
    let name = obj.require(c, "name", "the sensor to read").and_then(|(n, p)| {
        let name = c.string(n, &p)?;
        match sensors.iter().position(|s| s.name == name) {
            Some(i) => Some(i),
            // Defined but invalid: already reported where it is defined.
            None if names.iter().any(|n| n == name) => None,
            None => {
                c.error(
                    n.pos,
                    &p,
                    format!("no sensor \"{name}\" in extra_config.\"gatelet/sensors\""),
                );
                None
            }
        }
    });
    let reject_stale = obj.optional(c, "reject_stale", false, Checker::boolean);
    let write = obj.optional(c, "write", false, |c, n, p| {
        let write = c.boolean(n, p)?;
        if write && *method != http::Method::POST && *method != http::Method::PUT {
            c.error(n.pos, p, format!("writes need a POST or PUT endpoint, not {method}"));
        }
        Some(write)
    });
    obj.finish(c);
    Some(SensorBackend {
        sensor: name?,
        reject_stale: reject_stale?,
        write: write?,
    })
}
