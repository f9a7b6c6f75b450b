//! The `format`s the API server checks on our schemas: integer widths and `date-time`.

/// Whether `number` fits the integer `format` (`int32`, `int64`; other formats do not bound it).
/// A fractional number fits no integer format.
pub(crate) fn integer_fits(number: &serde_json::Number, format: &str) -> bool {
    let (low, high) = match format {
        "int32" => (i64::from(i32::MIN), i64::from(i32::MAX)),
        "uint32" => (0, i64::from(u32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    if let Some(integer) = number.as_i64() {
        return (low..=high).contains(&integer);
    }
    if format == "uint64" {
        return number.as_u64().is_some();
    }
    // A float or an integer past int64: fits only when whole and inside the range.
    number.as_f64().is_some_and(|float| {
        float.fract() == 0.0 && float >= low as f64 && float < (high as f64) + 1.0
    })
}

/// Whether `number` fits the number `format` (`float` is 32-bit; `double` bounds nothing).
pub(crate) fn number_fits(number: &serde_json::Number, format: &str) -> bool {
    match format {
        "float" | "float32" => number
            .as_f64()
            .is_some_and(|float| float.abs() <= f64::from(f32::MAX)),
        _ => true,
    }
}

/// RFC 3339 date-time as the API server accepts it: `2026-01-02T15:04:05Z`, with optional
/// fractional seconds and a `Z`, `±hh:mm` or `±hhmm` offset (or none: local time).
pub(crate) fn is_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once('T') else {
        return false;
    };
    is_date(date) && is_time_with_offset(time)
}

fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts[..] else {
        return false;
    };
    let (Some(year), Some(month), Some(day)) = (digits(year, 4), digits(month, 2), digits(day, 2))
    else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn is_time_with_offset(text: &str) -> bool {
    let (time, offset) = match text.find(['Z', '+', '-']) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let clock_ok = match clock.split(':').collect::<Vec<_>>()[..] {
        [hour, minute, second] => {
            digits(hour, 2).is_some_and(|h| h < 24)
                && digits(minute, 2).is_some_and(|m| m < 60)
                && digits(second, 2).is_some_and(|s| s <= 60)
        }
        _ => false,
    };
    let fraction_ok =
        fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    let offset_ok = match offset {
        "" | "Z" => true,
        _ => {
            let hours_minutes = &offset[1..];
            let (hours, minutes) = match hours_minutes.split_once(':') {
                Some(parts) => parts,
                None if hours_minutes.len() == 4 => hours_minutes.split_at(2),
                None => return false,
            };
            digits(hours, 2).is_some_and(|h| h < 24) && digits(minutes, 2).is_some_and(|m| m < 60)
        }
    };
    clock_ok && fraction_ok && offset_ok
}

/// `text` as a number when it is exactly `width` ASCII digits.
fn digits(text: &str, width: usize) -> Option<u32> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn number(value: serde_json::Value) -> serde_json::Number {
        match value {
            serde_json::Value::Number(number) => number,
            other => panic!("{other} is not a number"),
        }
    }

    #[test]
    fn integer_widths() {
        let cases = [
            (json!(2147483647), "int32", true),
            (json!(2147483648_i64), "int32", false),
            (json!(-2147483648_i64), "int32", true),
            (json!(-2147483649_i64), "int32", false),
            (json!(2.0), "int32", true),
            (json!(2.5), "int32", false),
            (json!(9223372036854775807_i64), "int64", true),
            (json!(9223372036854775808_u64), "int64", false),
            (json!(1e30), "int64", false),
            (json!(-1), "uint32", false),
            (json!(4294967295_u64), "uint32", true),
        ];
        for (value, format, fits) in cases {
            assert_eq!(
                integer_fits(&number(value.clone()), format),
                fits,
                "{value} {format}"
            );
        }
        assert!(number_fits(&number(json!(3.0e38)), "float"));
        assert!(!number_fits(&number(json!(3.5e38)), "float"));
        assert!(number_fits(&number(json!(3.5e38)), "double"));
    }

    #[test]
    fn date_times() {
        let cases = [
            ("2026-01-02T15:04:05Z", true),
            ("2026-01-02T15:04:05.123456Z", true),
            ("2026-01-02T15:04:05+02:00", true),
            ("2026-01-02T15:04:05-0700", true),
            ("2026-01-02T15:04:05", true),
            ("2024-02-29T00:00:00Z", true),
            ("2026-02-29T00:00:00Z", false),
            ("2026-13-02T15:04:05Z", false),
            ("2026-01-02 15:04:05Z", false),
            ("2026-01-02T25:04:05Z", false),
            ("2026-01-02T15:04Z", false),
            ("2026-01-02T15:04:05.Z", false),
            ("yesterday", false),
            ("", false),
        ];
        for (text, valid) in cases {
            assert_eq!(is_date_time(text), valid, "{text}");
        }
    }
}
