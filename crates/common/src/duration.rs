//! Durations written as Go writes them (`time.ParseDuration`): `1h30m`, `500ms`, `1.5h`, `0`.
//! The chart and upstream's values pass these to our flags unchanged. A bare number counts as
//! seconds, as our flags always accepted. Negative durations mean nothing for a flag and are
//! refused.

use std::time::Duration;

/// Nanoseconds per unit, longest spelling first where one is a prefix of another.
const UNITS: [(&str, f64); 8] = [
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("μs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// Parses `text` as a Go duration (or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("{text:?} is not a duration like 30s, 1m30s or 500ms: {why}");
    let body = text.strip_prefix('+').unwrap_or(text);
    if body.starts_with('-') {
        return Err(bad("negative"));
    }
    if body.is_empty() {
        return Err(bad("empty"));
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if let Ok(seconds) = body.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut rest = body;
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("a number without a unit"))?;
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| bad("a number is missing or malformed"))?;
        let (unit, scale) = UNITS
            .iter()
            .filter(|(unit, _)| after.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
            .ok_or_else(|| bad("unknown unit (ns, us, ms, s, m or h)"))?;
        nanos += value * scale;
        rest = &after[unit.len()..];
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(bad("too long"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (text, expected) in [
            ("90", s(90)),
            ("0", Duration::ZERO),
            ("30s", s(30)),
            ("2m", s(120)),
            ("1h", s(3600)),
            ("1m30s", s(90)),
            ("1h30m", s(5400)),
            ("500ms", ms(500)),
            ("1.5h", s(5400)),
            ("2h45m30.5s", ms(9_930_500)),
            ("300us", Duration::from_micros(300)),
            ("300µs", Duration::from_micros(300)),
            ("10ns", Duration::from_nanos(10)),
            ("+5s", s(5)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_the_reason() {
        for (text, why) in [
            ("2d", "unknown unit"),
            ("s", "malformed"),
            ("", "empty"),
            ("-5s", "negative"),
            ("1m30", "without a unit"),
            ("1..5s", "malformed"),
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
