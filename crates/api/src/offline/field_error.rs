//! Field errors as the API server words them (`Invalid value: 1: ...`, `Required value`), with
//! values printed the way Go's `fmt` prints them.

use serde_json::Value;

/// The kind of a field error; it decides the message's first words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorType {
    Required,
    Invalid,
    /// A value of the wrong JSON type (printed like `Invalid`).
    TypeInvalid,
    NotSupported,
    TooLong,
    TooMany,
    Forbidden,
    Duplicate,
}

impl ErrorType {
    fn words(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Forbidden => "Forbidden",
            Self::Duplicate => "Duplicate value",
        }
    }

    /// Errors after which the API server does not run the CEL rules (the object is too broken
    /// for them to be meaningful).
    pub(crate) fn blocks_cel(self) -> bool {
        matches!(
            self,
            Self::NotSupported | Self::Required | Self::TooLong | Self::TooMany | Self::TypeInvalid
        )
    }
}

/// One failing field, before it becomes a [`crate::offline::Finding`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub path: String,
    pub kind: ErrorType,
    /// The bad value as Go prints it; `None` when the message leaves it out.
    pub value: Option<String>,
    pub detail: String,
    /// The schema keyword or rule that failed.
    pub rule: String,
    /// Reported as a warning, not a refusal: the field is unchanged from the old object (the API
    /// server's validation ratcheting lets it pass), or the check could not be made offline.
    pub warning: bool,
}

impl FieldError {
    pub(crate) fn new(
        path: impl Into<String>,
        kind: ErrorType,
        value: Option<String>,
        detail: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind,
            value,
            detail: detail.into(),
            rule: rule.into(),
            warning: false,
        }
    }

    /// The message after the field path, as in `spec.x: <message>`.
    pub(crate) fn message(&self) -> String {
        let mut message = self.kind.words().to_owned();
        let shows_value = !matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong
        );
        if let (true, Some(value)) = (shows_value, &self.value) {
            message.push_str(": ");
            message.push_str(value);
        }
        if !self.detail.is_empty() {
            message.push_str(": ");
            message.push_str(&self.detail);
        }
        message
    }
}

/// A JSON value as the API server prints a bad value: strings quoted, numbers and booleans bare,
/// `null` as `"null"`, objects and lists in Go syntax.
pub(crate) fn go_value(value: &Value) -> String {
    match value {
        Value::Null => go_quote("null"),
        Value::String(text) => go_quote(text),
        Value::Number(_) | Value::Bool(_) => go_scalar(value),
        Value::Array(_) | Value::Object(_) => go_syntax(value),
    }
}

/// A number or boolean as Go's `%v` prints it.
fn go_scalar(value: &Value) -> String {
    match value {
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => integer.to_string(),
            None => go_float(number.as_f64().unwrap_or(f64::NAN)),
        },
        _ => go_syntax(value),
    }
}

/// Go's `%#v` of a decoded JSON value (`map[string]interface {}{"a":1}`).
fn go_syntax(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_owned(),
        Value::String(text) => go_quote(text),
        Value::Number(_) | Value::Bool(_) => go_scalar(value),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_syntax).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let mut fields: Vec<(&String, &Value)> = fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            let fields: Vec<String> = fields
                .into_iter()
                .map(|(key, value)| format!("{}:{}", go_quote(key), go_syntax(value)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", fields.join(", "))
        }
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => {
                quoted.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Go's `%v` of a float64: the shortest digits, in exponent form when the exponent is below -4
/// or at least 6 (`2`, `0.5`, `1e+06`, `2.147483647e+09`).
pub(crate) fn go_float(number: f64) -> String {
    if number.is_nan() {
        return "NaN".to_owned();
    }
    if number.is_infinite() {
        return if number > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if number == 0.0 {
        return if number.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `-2.147483647e9`.
    let scientific = format!("{:e}", number.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("an integral exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if number < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{fraction}e{exponent_sign}{:02}",
            exponent.abs()
        );
    }
    let point = exponent + 1;
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_as_go_prints_them() {
        let cases = [
            (2.0, "2"),
            (0.5, "0.5"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (2147483647.0, "2.147483647e+09"),
            (-2.5, "-2.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (3.4e38, "3.4e+38"),
            (0.0, "0"),
        ];
        for (number, text) in cases {
            assert_eq!(go_float(number), text, "{number}");
        }
    }

    #[test]
    fn values_print_as_the_api_server_prints_them() {
        let cases = [
            (json!("a\"b"), r#""a\"b""#),
            (json!(null), r#""null""#),
            (json!(1), "1"),
            (json!(2.5), "2.5"),
            (json!(true), "true"),
            (json!(["a", 1]), r#"[]interface {}{"a", 1}"#),
            (
                json!({"b": 1, "a": {"c": null}}),
                r#"map[string]interface {}{"a":map[string]interface {}{"c":interface {}(nil)}, "b":1}"#,
            ),
        ];
        for (value, text) in cases {
            assert_eq!(go_value(&value), text, "{value}");
        }
    }

    #[test]
    fn messages_follow_the_error_type() {
        let error = |kind, value: Option<&str>, detail: &str| {
            FieldError::new("p", kind, value.map(str::to_owned), detail, "r").message()
        };
        let cases = [
            (error(ErrorType::Required, None, ""), "Required value"),
            (
                error(ErrorType::Required, Some("\"x\""), "why"),
                "Required value: why",
            ),
            (
                error(ErrorType::Invalid, Some("1"), "too small"),
                "Invalid value: 1: too small",
            ),
            (
                error(ErrorType::Invalid, None, "omitted"),
                "Invalid value: omitted",
            ),
            (
                error(
                    ErrorType::NotSupported,
                    Some("\"x\""),
                    "supported values: \"a\"",
                ),
                "Unsupported value: \"x\": supported values: \"a\"",
            ),
            (
                error(
                    ErrorType::TooLong,
                    Some("\"xx\""),
                    "may not be more than 1 byte",
                ),
                "Too long: may not be more than 1 byte",
            ),
            (
                error(ErrorType::TooMany, Some("3"), "must have at most 2 items"),
                "Too many: 3: must have at most 2 items",
            ),
            (error(ErrorType::Forbidden, None, "no"), "Forbidden: no"),
            (
                error(ErrorType::Duplicate, Some("\"a\""), ""),
                "Duplicate value: \"a\"",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(message, expected);
        }
    }
}
