//! Go duration strings as KrakenD writes them (`"300ms"`, `"2s"`, `"1m30s"`, `"1.5h"`), parsed
//! exactly with integer arithmetic into nanoseconds. Negative durations are refused: nothing in
//! a gateway config means "minus two seconds".

use std::time::Duration;

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration. The message says what is wrong, for the config error.
pub fn parse(text: &str) -> Result<Duration, String> {
    let hint = "expected a duration such as \"300ms\", \"2s\" or \"1m30s\"";
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.starts_with('-') {
        return Err("a duration cannot be negative".to_string());
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(hint.to_string());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(format!("{hint}: a number is missing in \"{text}\""));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!("{hint}: a unit (ns, us, ms, s, m, h) is missing in \"{text}\"")
            } else {
                format!("{hint}: unknown unit \"{unit}\"")
            });
        };
        let too_long = || format!("duration \"{text}\" is too long");
        let mut value: u128 = 0;
        for d in int.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(d - b'0')))
                .ok_or_else(too_long)?;
        }
        value = value.checked_mul(scale).ok_or_else(too_long)?;
        // The fraction, exactly: digits beyond nanosecond precision are dropped, as Go does.
        let mut place = scale;
        for d in frac.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += u128::from(d - b'0') * place;
        }
        total = total.checked_add(value).ok_or_else(too_long)?;
        rest = after;
    }
    let nanos = u64::try_from(total).map_err(|_| format!("duration \"{text}\" is too long"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms() {
        let ms = Duration::from_millis;
        assert_eq!(parse("300ms"), Ok(ms(300)));
        assert_eq!(parse("2s"), Ok(ms(2000)));
        assert_eq!(parse("1m"), Ok(ms(60_000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("1.s"), Ok(ms(1000)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("1.0000000019s"), Ok(Duration::from_nanos(1_000_000_001)));
        assert_eq!(parse("+5s"), Ok(ms(5000)));
        assert_eq!(parse("2h45m10.5s"), Ok(ms(9_910_500)));
    }

    #[test]
    fn bad_forms_say_why() {
        assert!(
            parse("2")
                .unwrap_err()
                .contains("unit (ns, us, ms, s, m, h) is missing")
        );
        assert!(parse("2 s").unwrap_err().contains("unknown unit \" s\""));
        assert!(parse("2sec").unwrap_err().contains("unknown unit \"sec\""));
        assert!(parse("-1s").unwrap_err().contains("negative"));
        assert!(parse("").is_err());
        assert!(parse("s").unwrap_err().contains("number is missing"));
        assert!(parse(".s").unwrap_err().contains("number is missing"));
        assert!(
            parse("99999999999999999999999999999999999999999h")
                .unwrap_err()
                .contains("too long")
        );
        assert!(parse("6000000h").unwrap_err().contains("too long"));
    }
}
