//! NMEA 0183 (GPS) sentences to one merged fix. Sans-io: bytes of one sentence in, the
//! updated fix out. The checksum is verified (or, with `allow_missing`, verified when present),
//! and because an XOR checksum catches little, every field is range-checked too: a sentence
//! with an impossible latitude is a bad frame, not a fix. GGA, RMC and VTG from the GP, GN,
//! GL and GA talkers update the fix; other valid sentences (GSV, GSA, other talkers) are
//! ignored without counting as bad.

use serde_json::{Map, Value, json};

pub use crate::config::Checksum;

/// Why a sentence was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSentence(pub String);

fn bad<T>(why: impl Into<String>) -> Result<T, BadSentence> {
    Err(BadSentence(why.into()))
}

/// The fix merged from the latest GGA, RMC and VTG.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fix {
    lat: Option<f64>,
    lon: Option<f64>,
    fix_quality: Option<u8>,
    satellites: Option<u8>,
    altitude_m: Option<f64>,
    speed_kmh: Option<f64>,
    course_deg: Option<f64>,
    /// `hh`, `mm`, seconds (with fraction, as written).
    time: Option<(u8, u8, String)>,
    /// `yyyy`, `mm`, `dd` from RMC.
    date: Option<(u16, u8, u8)>,
}

impl Fix {
    /// The reading: `lat`, `lon` (decimal degrees), `fix_quality`, `satellites`, `altitude_m`,
    /// `speed_kmh`, `course_deg`, `utc` (RFC 3339, once RMC has given the date); `null` for
    /// what no sentence has said yet.
    pub fn to_json(&self) -> Value {
        let utc = match (&self.date, &self.time) {
            (Some((y, mo, d)), Some((h, mi, s))) => {
                let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
                let frac = if frac.is_empty() {
                    String::new()
                } else {
                    format!(".{frac}")
                };
                Value::String(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{whole}{frac}Z"))
            }
            _ => Value::Null,
        };
        let mut m = Map::new();
        m.insert("lat".into(), json!(self.lat));
        m.insert("lon".into(), json!(self.lon));
        m.insert("fix_quality".into(), json!(self.fix_quality));
        m.insert("satellites".into(), json!(self.satellites));
        m.insert("altitude_m".into(), json!(self.altitude_m));
        m.insert("speed_kmh".into(), json!(self.speed_kmh));
        m.insert("course_deg".into(), json!(self.course_deg));
        m.insert("utc".into(), utc);
        Value::Object(m)
    }

    /// Feeds one sentence (with or without the line ending). `Ok(true)` when the fix changed,
    /// `Ok(false)` for a valid sentence gatelet does not use.
    pub fn feed(&mut self, line: &[u8], checksum: Checksum) -> Result<bool, BadSentence> {
        let Ok(line) = std::str::from_utf8(line) else {
            return bad("not ASCII");
        };
        let line = line.trim_end_matches(['\r', '\n']);
        let Some(body) = line.strip_prefix('$') else {
            return bad("does not start with '$'");
        };
        let body = match body.rsplit_once('*') {
            Some((body, sum)) => {
                // Two hex digits and nothing else (`from_str_radix` alone also takes a `+`).
                let digits = sum.len() == 2 && sum.bytes().all(|b| b.is_ascii_hexdigit());
                let Some(expected) = u8::from_str_radix(sum, 16).ok().filter(|_| digits) else {
                    return bad(format!("checksum {sum:?} is not two hex digits"));
                };
                let actual = body.bytes().fold(0u8, |a, b| a ^ b);
                if actual != expected {
                    return bad(format!("checksum {expected:02X} does not match {actual:02X}"));
                }
                body
            }
            None if checksum == Checksum::Require => return bad("no checksum"),
            None => body,
        };
        if !body.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return bad("control or non-ASCII byte");
        }
        let fields: Vec<&str> = body.split(',').collect();
        let kind = fields[0];
        if kind.len() != 5 {
            return bad(format!("sentence type {kind:?}"));
        }
        let (talker, sentence) = kind.split_at(2);
        if !matches!(talker, "GP" | "GN" | "GL" | "GA") {
            return Ok(false);
        }
        let mut next = self.clone();
        match sentence {
            "GGA" => next.gga(&fields)?,
            "RMC" => next.rmc(&fields)?,
            "VTG" => next.vtg(&fields)?,
            _ => return Ok(false),
        }
        let changed = next != *self;
        *self = next;
        Ok(changed)
    }

    fn gga(&mut self, f: &[&str]) -> Result<(), BadSentence> {
        if f.len() < 10 {
            return bad(format!("GGA has {} fields", f.len()));
        }
        let time = time(f[1])?;
        let position = position(f[2], f[3], f[4], f[5])?;
        let quality = optional(f[6], "fix quality", 0.0, 8.0)?.map(|q| q as u8);
        let satellites = optional(f[7], "satellites", 0.0, 99.0)?.map(|s| s as u8);
        let altitude = optional(f[9], "altitude", -1_000.0, 100_000.0)?;
        if time.is_some() {
            self.time = time;
        }
        self.fix_quality = quality;
        self.satellites = satellites;
        if quality.unwrap_or(0) == 0 {
            // No fix: what the receiver says now is "I don't know where I am".
            (self.lat, self.lon, self.altitude_m) = (None, None, None);
        } else {
            (self.lat, self.lon) = position.unzip();
            self.altitude_m = altitude;
        }
        Ok(())
    }

    fn rmc(&mut self, f: &[&str]) -> Result<(), BadSentence> {
        if f.len() < 10 {
            return bad(format!("RMC has {} fields", f.len()));
        }
        let time = time(f[1])?;
        let valid = match f[2] {
            "A" => true,
            "V" => false,
            s => return bad(format!("RMC status {s:?}")),
        };
        let position = position(f[3], f[4], f[5], f[6])?;
        let knots = optional(f[7], "speed", 0.0, 1_000.0)?;
        let course = optional(f[8], "course", 0.0, 360.0)?;
        let date = date(f[9])?;
        if time.is_some() {
            self.time = time;
        }
        if date.is_some() {
            self.date = date;
        }
        if valid {
            (self.lat, self.lon) = position.unzip();
            self.speed_kmh = knots.map(|k| round3(k * 1.852));
            self.course_deg = course;
        } else {
            (self.lat, self.lon, self.speed_kmh, self.course_deg) = (None, None, None, None);
        }
        Ok(())
    }

    fn vtg(&mut self, f: &[&str]) -> Result<(), BadSentence> {
        if f.len() < 9 {
            return bad(format!("VTG has {} fields", f.len()));
        }
        let course = optional(f[1], "course", 0.0, 360.0)?;
        let kmh = optional(f[7], "speed", 0.0, 1_852.0)?;
        if course.is_some() {
            self.course_deg = course;
        }
        if kmh.is_some() {
            self.speed_kmh = kmh;
        }
        Ok(())
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// An empty field is `None`; anything else must be a plain decimal in `min..=max`.
fn optional(field: &str, what: &str, min: f64, max: f64) -> Result<Option<f64>, BadSentence> {
    if field.is_empty() {
        return Ok(None);
    }
    let plain = field.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    match field.parse::<f64>() {
        Ok(v) if plain && (min..=max).contains(&v) => Ok(Some(v)),
        _ => bad(format!("{what} {field:?} out of range")),
    }
}

/// `hhmmss[.ss]`.
fn time(field: &str) -> Result<Option<(u8, u8, String)>, BadSentence> {
    if field.is_empty() {
        return Ok(None);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, frac) = field.split_once('.').unwrap_or((field, ""));
    if whole.len() != 6 || !digits(whole) || !(frac.is_empty() || digits(frac)) {
        return bad(format!("time {field:?}"));
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<u8>().unwrap_or(99);
    let (h, m, s) = (n(0..2), n(2..4), n(4..6));
    if h > 23 || m > 59 || s > 60 {
        return bad(format!("time {field:?} out of range"));
    }
    Ok(Some((h, m, field[4..].to_string())))
}

/// `ddmmyy` (years 80–99 are 19xx, as receivers mean it).
fn date(field: &str) -> Result<Option<(u16, u8, u8)>, BadSentence> {
    if field.is_empty() {
        return Ok(None);
    }
    if field.len() != 6 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return bad(format!("date {field:?}"));
    }
    let n = |r: std::ops::Range<usize>| field[r].parse::<u16>().unwrap_or(99);
    let (d, m, y) = (n(0..2), n(2..4), n(4..6));
    if !(1..=31).contains(&d) || !(1..=12).contains(&m) {
        return bad(format!("date {field:?} out of range"));
    }
    let year = if y >= 80 { 1900 + y } else { 2000 + y };
    Ok(Some((year, m as u8, d as u8)))
}

/// `ddmm.mmmm,N,dddmm.mmmm,E` to signed decimal degrees; all empty is `None`.
fn position(lat: &str, ns: &str, lon: &str, ew: &str) -> Result<Option<(f64, f64)>, BadSentence> {
    if lat.is_empty() && ns.is_empty() && lon.is_empty() && ew.is_empty() {
        return Ok(None);
    }
    let lat = degrees(lat, 2, 90.0)?;
    let lon = degrees(lon, 3, 180.0)?;
    let lat = match ns {
        "N" => lat,
        "S" => -lat,
        s => return bad(format!("hemisphere {s:?}")),
    };
    let lon = match ew {
        "E" => lon,
        "W" => -lon,
        s => return bad(format!("hemisphere {s:?}")),
    };
    Ok(Some((lat, lon)))
}

fn degrees(field: &str, degree_digits: usize, max: f64) -> Result<f64, BadSentence> {
    let (whole, _) = field.split_once('.').unwrap_or((field, ""));
    if whole.len() != degree_digits + 2 || !field.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return bad(format!("coordinate {field:?}"));
    }
    let deg: f64 = field[..degree_digits]
        .parse()
        .map_err(|_| BadSentence(format!("coordinate {field:?}")))?;
    let min: f64 = field[degree_digits..]
        .parse()
        .map_err(|_| BadSentence(format!("coordinate {field:?}")))?;
    let value = deg + min / 60.0;
    if min >= 60.0 || value > max {
        return bad(format!("coordinate {field:?} out of range"));
    }
    // 1e-7 degrees is ~1 cm: more digits are noise.
    Ok((value * 1e7).round() / 1e7)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real-world sentences: the NMEA reference examples and a u-blox M8 capture.
    const GGA: &[u8] = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n";
    const RMC: &[u8] = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n";
    const VTG: &[u8] = b"$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48";
    const UBLOX_GGA: &[u8] = b"$GNGGA,001043.00,4404.14036,N,12118.85961,W,1,12,0.98,1113.0,M,-21.3,M,,*47";
    const UBLOX_RMC: &[u8] = b"$GNRMC,001031.00,A,4404.13993,N,12118.86023,W,0.146,,100117,,,A*7B";
    const NO_FIX: &[u8] = b"$GPGGA,,,,,,0,00,99.99,,,,,,*48";
    const GSV: &[u8] = b"$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74";
    const VOID_RMC: &[u8] = b"$GPRMC,081836,V,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E*75";

    #[test]
    fn gga_then_rmc_merge_into_one_fix() {
        let mut fix = Fix::default();
        assert_eq!(fix.feed(GGA, Checksum::Require), Ok(true));
        assert_eq!(fix.feed(RMC, Checksum::Require), Ok(true));
        assert_eq!(
            fix.to_json(),
            json!({"lat": 48.1173, "lon": 11.5166667, "fix_quality": 1, "satellites": 8, "altitude_m": 545.4,
                   "speed_kmh": 41.485, "course_deg": 84.4, "utc": "1994-03-23T12:35:19Z"})
        );
        assert_eq!(fix.feed(VTG, Checksum::Require), Ok(true));
        assert_eq!(fix.to_json()["speed_kmh"], 10.2);
        assert_eq!(fix.to_json()["course_deg"], 54.7);
    }

    #[test]
    fn gn_talker_and_western_hemisphere() {
        let mut fix = Fix::default();
        fix.feed(UBLOX_RMC, Checksum::Require).unwrap();
        fix.feed(UBLOX_GGA, Checksum::Require).unwrap();
        let j = fix.to_json();
        assert_eq!(j["lat"], 44.0690060);
        assert_eq!(j["lon"], -121.3143268);
        assert_eq!(j["satellites"], 12);
        assert_eq!(j["altitude_m"], 1113.0);
        assert_eq!(j["utc"], "2017-01-10T00:10:43.00Z");
        assert!(j["course_deg"].is_null(), "empty course stays unknown");
    }

    #[test]
    fn no_fix_and_void_clear_the_position() {
        let mut fix = Fix::default();
        fix.feed(GGA, Checksum::Require).unwrap();
        fix.feed(NO_FIX, Checksum::Require).unwrap();
        assert!(fix.to_json()["lat"].is_null());
        assert_eq!(fix.to_json()["fix_quality"], 0);
        fix.feed(RMC, Checksum::Require).unwrap();
        fix.feed(VOID_RMC, Checksum::Require).unwrap();
        assert!(fix.to_json()["lon"].is_null());
        assert_eq!(fix.to_json()["utc"], "1998-09-13T08:18:36Z");
    }

    #[test]
    fn other_sentences_and_talkers_are_valid_but_unused() {
        let mut fix = Fix::default();
        assert_eq!(fix.feed(GSV, Checksum::Require), Ok(false));
        let beidou = b"$BDGSA,A,3,,,,,,,,,,,,,,,*0F";
        let sum = beidou[1..beidou.len() - 3].iter().fold(0u8, |a, b| a ^ b);
        let line = format!("$BDGSA,A,3,,,,,,,,,,,,,,,*{sum:02X}");
        assert_eq!(fix.feed(line.as_bytes(), Checksum::Require), Ok(false));
    }

    #[test]
    fn checksums_are_enforced() {
        let mut fix = Fix::default();
        let wrong = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48";
        assert!(
            fix.feed(wrong, Checksum::Require)
                .unwrap_err()
                .0
                .contains("does not match")
        );
        let missing = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,";
        assert_eq!(
            fix.feed(missing, Checksum::Require),
            Err(BadSentence("no checksum".into()))
        );
        assert_eq!(fix.feed(missing, Checksum::AllowMissing), Ok(true));
        assert!(
            fix.feed(wrong, Checksum::AllowMissing).is_err(),
            "present means checked"
        );
        assert!(fix.feed(b"$GPGGA,1*4", Checksum::Require).is_err());
    }

    #[test]
    fn a_checksum_is_exactly_two_hex_digits() {
        // The body XORs to 0x0F, so a parser of integers reads `+F` (and `0F`) as a match.
        let body = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,16.9,,,";
        let mut fix = Fix::default();
        assert_eq!(fix.feed(format!("{body}*0F").as_bytes(), Checksum::Require), Ok(true));
        assert_eq!(
            Fix::default().feed(format!("{body}*0f").as_bytes(), Checksum::Require),
            Ok(true)
        );
        for sum in ["+F", "-F", " F", "F ", "F", "00F", "0x", "", "\u{0660}F"] {
            let line = format!("{body}*{sum}");
            assert_eq!(
                Fix::default().feed(line.as_bytes(), Checksum::Require),
                Err(BadSentence(format!("checksum {sum:?} is not two hex digits"))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn impossible_fields_are_bad_even_with_a_good_checksum() {
        let with_sum = |body: &str| {
            let sum = body.bytes().fold(0u8, |a, b| a ^ b);
            format!("${body}*{sum:02X}")
        };
        let mut fix = Fix::default();
        fix.feed(GGA, Checksum::Require).unwrap();
        let before = fix.clone();
        for body in [
            "GPGGA,123519,9107.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", // lat 91
            "GPGGA,123519,4807.038,N,18131.000,E,1,08,0.9,545.4,M,46.9,M,,", // lon 181
            "GPGGA,123519,4860.000,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", // 60 minutes
            "GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", // hemisphere
            "GPGGA,253519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,", // 25 h
            "GPGGA,123519,4807.038,N,01131.000,E,9,08,0.9,545.4,M,46.9,M,,", // quality 9
            "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4e3,M,46.9,M,,", // exponent
            "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W", // 32nd
            "GPRMC,123519,Q,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W", // status
            "GPGGA,123519",
        ] {
            assert!(
                fix.feed(with_sum(body).as_bytes(), Checksum::Require).is_err(),
                "{body}"
            );
        }
        assert_eq!(fix, before, "bad sentences change nothing");
    }

    #[test]
    fn garbage_never_panics() {
        let mut fix = Fix::default();
        let inputs: [&[u8]; 8] = [
            b"",
            b"$",
            b"$*",
            b"$GP*00",
            b"\xff\xfe",
            b"$GPGGA,,,,*",
            b"$\xc3\xa9*00",
            b"$GPRMC*00",
        ];
        for input in inputs {
            let _ = fix.feed(input, Checksum::AllowMissing);
        }
        for end in 0..GGA.len() {
            let _ = fix.feed(&GGA[..end], Checksum::AllowMissing);
        }
    }
}
