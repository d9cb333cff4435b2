//! Frame decoders (`decode` of a sensor): bytes of one frame in, a JSON reading out. A frame is
//! a line for stream sources and the whole file for `file` sources in `read` mode. Sans-io;
//! a bad frame is an error the caller counts and drops, never a panic. Only `nmea` keeps state
//! (the fix merged across sentences).

use serde_json::{Map, Number, Value};

use super::nmea::Fix;

pub use crate::config::Decode;

/// Why a frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame(pub String);

/// A decoder with its state.
#[derive(Debug, Clone)]
pub struct Decoder {
    decode: Decode,
    fix: Fix,
}

impl Decoder {
    /// A fresh decoder.
    pub fn new(decode: Decode) -> Decoder {
        Decoder {
            decode,
            fix: Fix::default(),
        }
    }

    /// Decodes one frame: `Ok(Some(reading))`, `Ok(None)` for a valid frame that carries no
    /// reading (a blank line, an NMEA sentence gatelet does not use), or the reason it is bad.
    pub fn frame(&mut self, frame: &[u8]) -> Result<Option<Value>, BadFrame> {
        match &self.decode {
            Decode::Text => Ok(Some(Value::String(text(frame)?.to_string()))),
            Decode::Number { scale } => number(text(frame)?, *scale).map(Some),
            Decode::Json => json(frame).map(Some),
            Decode::JsonLines if text(frame)?.is_empty() => Ok(None),
            Decode::JsonLines => json(frame).map(Some),
            Decode::Kv => kv(text(frame)?).map(Some),
            Decode::Nmea(checksum) => match self.fix.feed(frame, *checksum) {
                Ok(true) => Ok(Some(self.fix.to_json())),
                Ok(false) => Ok(None),
                Err(e) => Err(BadFrame(e.0)),
            },
        }
    }
}

fn text(frame: &[u8]) -> Result<&str, BadFrame> {
    std::str::from_utf8(frame)
        .map(str::trim)
        .map_err(|_| BadFrame("not UTF-8".into()))
}

fn json(frame: &[u8]) -> Result<Value, BadFrame> {
    serde_json::from_slice(frame).map_err(|e| BadFrame(format!("invalid JSON: {e}")))
}

/// A number as JSON: integers stay integers when not scaled.
fn number(s: &str, scale: Option<f64>) -> Result<Value, BadFrame> {
    let not_a_number = || BadFrame(format!("{s:?} is not a number"));
    if scale.is_none()
        && let Ok(i) = s.parse::<i64>()
    {
        return Ok(Value::from(i));
    }
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    let v: f64 = s
        .parse()
        .ok()
        .filter(|v: &f64| plain && v.is_finite())
        .ok_or_else(not_a_number)?;
    let v = v * scale.unwrap_or(1.0);
    // Scaling by 0.001 gives 41.900000000000006; 12 significant digits is beyond any sensor.
    let v = format!("{v:.12e}").parse::<f64>().unwrap_or(v);
    Number::from_f64(v).map(Value::Number).ok_or_else(not_a_number)
}

fn kv(s: &str) -> Result<Value, BadFrame> {
    let mut map = Map::new();
    for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let split = match (line.find('='), line.find(':')) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(at) = split else {
            return Err(BadFrame(format!("line {line:?} is not key=value or key: value")));
        };
        let (key, value) = (line[..at].trim(), line[at + 1..].trim());
        if key.is_empty() {
            return Err(BadFrame(format!("line {line:?} has no key")));
        }
        let value = number(value, None).unwrap_or_else(|_| Value::String(value.to_string()));
        map.insert(key.to_string(), value);
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Checksum;
    use serde_json::json;

    fn one(decode: Decode, frame: &[u8]) -> Result<Option<Value>, BadFrame> {
        Decoder::new(decode).frame(frame)
    }

    #[test]
    fn text_and_numbers() {
        assert_eq!(one(Decode::Text, b"  door open\n"), Ok(Some(json!("door open"))));
        assert!(one(Decode::Text, b"\xff").is_err());
        assert_eq!(one(Decode::Number { scale: None }, b"42\n"), Ok(Some(json!(42))));
        assert_eq!(one(Decode::Number { scale: None }, b"-3.5"), Ok(Some(json!(-3.5))));
        // /sys/class/thermal/thermal_zone0/temp is millidegrees.
        assert_eq!(
            one(Decode::Number { scale: Some(0.001) }, b"41900\n"),
            Ok(Some(json!(41.9)))
        );
        for bad in [&b"abc"[..], b"", b"NaN", b"inf", b"1e999", b"0x10", b"4 2"] {
            assert!(one(Decode::Number { scale: None }, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_and_json_lines() {
        // A gpsd TPV report as gpsd writes it with ?WATCH={"json":true}.
        let tpv = br#"{"class":"TPV","device":"/dev/ttyUSB0","mode":3,"time":"2026-11-23T05:00:00.000Z","lat":52.520008,"lon":13.404954,"alt":34.0,"speed":11.2}"#;
        let v = one(Decode::JsonLines, tpv).unwrap().unwrap();
        assert_eq!(v["class"], "TPV");
        assert_eq!(v["lat"], 52.520008);
        assert_eq!(one(Decode::JsonLines, b"  \r\n"), Ok(None));
        assert!(one(Decode::JsonLines, b"{\"class\":").is_err());
        assert_eq!(one(Decode::Json, b"[1,2]"), Ok(Some(json!([1, 2]))));
    }

    #[test]
    fn kv_reads_proc_meminfo() {
        let meminfo = b"MemTotal:       16316412 kB\nMemFree:         1230000 kB\nHugePages_Total:       0\n";
        assert_eq!(
            one(Decode::Kv, meminfo),
            Ok(Some(
                json!({"MemTotal": "16316412 kB", "MemFree": "1230000 kB", "HugePages_Total": 0})
            ))
        );
        assert_eq!(
            one(Decode::Kv, b"fuel=71\nunit = %\n"),
            Ok(Some(json!({"fuel": 71, "unit": "%"})))
        );
        assert!(one(Decode::Kv, b"fuel=71\ngarbage\n").is_err());
        assert!(one(Decode::Kv, b"=1").is_err());
    }

    #[test]
    fn nmea_keeps_the_fix_across_frames() {
        let mut d = Decoder::new(Decode::Nmea(Checksum::Require));
        let gga = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47";
        assert_eq!(d.frame(gga).unwrap().unwrap()["satellites"], 8);
        let gsv = b"$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74";
        assert_eq!(d.frame(gsv), Ok(None));
        assert!(d.frame(b"$GPGGA,garbage*00").is_err());
        let rmc = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A";
        let fix = d.frame(rmc).unwrap().unwrap();
        assert_eq!(
            (fix["satellites"].clone(), fix["utc"].clone()),
            (json!(8), json!("1994-03-23T12:35:19Z"))
        );
    }
}
