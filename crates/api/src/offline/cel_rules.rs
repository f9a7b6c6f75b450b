//! The `x-kubernetes-validations` CEL rules of a schema, evaluated as the API server evaluates
//! them: on each non-null value whose schema node holds rules, with `self` bound to the value and,
//! on an update, `oldSelf` to the old value it replaces. Transition rules (those reading `oldSelf`)
//! run only when there is such an old value, unless they set `optionalOldSelf`.
//!
//! Failures are reported at the path of the node holding the rule, in the CEL validator's
//! spelling (`spec.services[Frontend].checkpoint`), plus the rule's `fieldPath`.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map, OptionalValue};
use cel::{Context, Env, ExecutionError, Program};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, ValidationRule,
};
use serde_json::Value;

use super::field_error::{ErrorType, FieldError, go_quote, go_value};
use super::openapi::correlated_item;
use super::path::FieldPath;
use super::structural::Structural;

/// Longest message a `messageExpression` may produce.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// The CEL rule findings of `object` (pruned and defaulted), on an update from `old`.
pub(crate) fn validate(
    object: &Value,
    old: Option<&Value>,
    schema: &JSONSchemaProps,
) -> Vec<FieldError> {
    let mut evaluator = Evaluator::new();
    let mut errors = Vec::new();
    evaluator.walk(
        schema,
        object,
        old,
        old.is_some_and(|old| old == object),
        &FieldPath::root(),
        &mut errors,
    );
    errors
}

/// A value whose schema node may hold rules: the old value it replaces (when there is one to
/// match), whether it is unchanged (for ratcheting), and where it is.
#[derive(Clone, Copy)]
struct Node<'a> {
    schema: &'a JSONSchemaProps,
    value: &'a Value,
    old: Option<&'a Value>,
    unchanged: bool,
    path: &'a FieldPath,
}

/// The CEL environment the rules compile in, and each rule compiled once.
struct Evaluator {
    env: Arc<Env>,
    programs: HashMap<String, Result<Arc<Program>, String>>,
}

impl Evaluator {
    fn new() -> Self {
        // The extension libraries the API server offers too; its Kubernetes-only libraries
        // (quantity, url, ip, cidr, authz, ...) are not available here.
        let mut env = Env::stdlib().with_optional_support(true);
        for extension in [
            cel::extensions::strings,
            cel::extensions::lists,
            cel::extensions::math,
        ] {
            env.add_extension(extension)
                .expect("the standard extensions declare no conflicting functions");
        }
        Self {
            env: Arc::new(env),
            programs: HashMap::new(),
        }
    }

    fn program(&mut self, source: &str) -> Result<Arc<Program>, String> {
        let env = &self.env;
        self.programs
            .entry(source.to_owned())
            .or_insert_with(|| env.compile(source).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
    }

    /// Checks the rules of `value`'s node and of everything under it. `parent_unchanged`: the
    /// nearest ancestor that has an old value equals it (failures of rules without `oldSelf`
    /// under an unchanged ancestor are only warnings).
    fn walk(
        &mut self,
        schema: &JSONSchemaProps,
        value: &Value,
        old: Option<&Value>,
        parent_unchanged: bool,
        path: &FieldPath,
        errors: &mut Vec<FieldError>,
    ) {
        if value.is_null() {
            return;
        }
        let node = Node {
            schema,
            value,
            old,
            unchanged: old.map_or(parent_unchanged, |old| old == value),
            path,
        };
        self.node_rules(schema, &node, errors);
        for branch in schema.all_of.iter().flatten() {
            // The API server does not ratchet rules inside `allOf`.
            let node = Node {
                unchanged: false,
                ..node
            };
            self.node_rules(branch, &node, errors);
        }
        let unchanged = node.unchanged;
        match value {
            Value::Object(fields) => {
                for (name, child) in fields {
                    let old_child = old.and_then(|old| old.get(name));
                    if let Some(property) = schema.property(name) {
                        let child_path = path.field(name);
                        self.walk(property, child, old_child, unchanged, &child_path, errors);
                    } else if let Some(values) = schema.map_values() {
                        let child_path = path.key(name);
                        self.walk(values, child, old_child, unchanged, &child_path, errors);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.list_items() {
                    for (index, item) in items.iter().enumerate() {
                        let old_item = old.and_then(|old| correlated_item(schema, item, old));
                        let item_path = path.index(index);
                        self.walk(item_schema, item, old_item, unchanged, &item_path, errors);
                    }
                }
            }
            _ => {}
        }
    }

    /// Evaluates the rules `holder` declares on `node`.
    fn node_rules(
        &mut self,
        holder: &JSONSchemaProps,
        node: &Node<'_>,
        errors: &mut Vec<FieldError>,
    ) {
        for rule in holder.x_kubernetes_validations.iter().flatten() {
            errors.extend(self.evaluate(rule, node));
        }
    }

    fn evaluate(&mut self, rule: &ValidationRule, node: &Node<'_>) -> Option<FieldError> {
        let Node {
            schema,
            value,
            old,
            unchanged,
            path,
        } = *node;
        let here = path.field_style();
        let program = match self.program(&rule.rule) {
            Ok(program) => program,
            Err(reason) => return Some(not_checked(here, rule, &reason)),
        };
        let uses_old_self = program.references().has_variable("oldSelf");
        let optional_old_self = rule.optional_old_self == Some(true);
        if uses_old_self && old.is_none() && !optional_old_self {
            return None;
        }
        let mut context = Context::with_env(self.env.clone());
        context.add_variable_from_value("self", to_cel(value, Some(schema)));
        if uses_old_self {
            let old_self = old.map(|old| to_cel(old, Some(schema)));
            let old_self = match (optional_old_self, old_self) {
                (true, Some(old)) => cel::Value::Opaque(Arc::new(OptionalValue::of(old))),
                (true, None) => cel::Value::Opaque(Arc::new(OptionalValue::none())),
                (false, old) => old.unwrap_or(cel::Value::Null),
            };
            context.add_variable_from_value("oldSelf", old_self);
        }
        let type_name = schema.type_.clone().unwrap_or_default();
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => None,
            Ok(_) => {
                let detail = self
                    .message_from_expression(rule, &context)
                    .unwrap_or_else(|| default_message(rule));
                let failing = rule
                    .field_path
                    .as_deref()
                    .and_then(|field_path| with_field_path(path, schema, field_path))
                    .unwrap_or_else(|| path.clone());
                // Objects and lists are left out of the message; scalars are shown.
                let shown =
                    (!matches!(type_name.as_str(), "object" | "array")).then(|| go_value(value));
                let mut error = rule_failure(failing.field_style(), rule, shown, detail);
                error.warning = !uses_old_self && unchanged;
                Some(error)
            }
            Err(error) => Some(evaluation_error(here, rule, &type_name, &error)),
        }
    }

    /// The rule's `messageExpression`, when it evaluates to a usable message.
    fn message_from_expression(
        &mut self,
        rule: &ValidationRule,
        context: &Context,
    ) -> Option<String> {
        let program = self.program(rule.message_expression.as_deref()?).ok()?;
        let cel::Value::String(message) = program.execute(context).ok()? else {
            return None;
        };
        let message = message.trim();
        let usable =
            !message.is_empty() && !message.contains('\n') && message.len() <= MAX_MESSAGE_BYTES;
        usable.then(|| message.to_owned())
    }
}

/// How the API server names a rule in messages: its message, else its text.
fn rule_name(rule: &ValidationRule) -> &str {
    match rule.message.as_deref().map(str::trim) {
        Some(message) if !message.is_empty() => message,
        _ => rule.rule.trim(),
    }
}

fn default_message(rule: &ValidationRule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(message) if !message.is_empty() => message.to_owned(),
        _ => format!("failed rule: {}", rule.rule.trim()),
    }
}

/// The error of a rule that evaluated to false, by the rule's `reason`.
fn rule_failure(
    path: String,
    rule: &ValidationRule,
    value: Option<String>,
    detail: String,
) -> FieldError {
    let (kind, value, detail) = match rule.reason.as_deref() {
        Some("FieldValueForbidden") => (ErrorType::Forbidden, None, detail),
        Some("FieldValueRequired") => (ErrorType::Required, None, detail),
        Some("FieldValueDuplicate") => (ErrorType::Duplicate, value, String::new()),
        _ => (ErrorType::Invalid, value, detail),
    };
    FieldError::new(path, kind, value, detail, rule.rule.clone())
}

/// A rule that raised an error instead of returning a boolean (a missing key, a division by
/// zero, ...), worded as the API server words it; functions only the API server has make the
/// rule uncheckable here, which is a warning.
fn evaluation_error(
    path: String,
    rule: &ValidationRule,
    type_name: &str,
    error: &ExecutionError,
) -> FieldError {
    let detail = match error {
        ExecutionError::UndeclaredReference(_) | ExecutionError::FunctionError { .. } => {
            return not_checked(path, rule, &error.to_string());
        }
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::UnsupportedTargetType { .. } => format!(
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
            rule_name(rule)
        ),
        other => {
            let reason = match other {
                ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
                ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
                ExecutionError::RemainderByZero(_) => "modulus by zero".to_owned(),
                ExecutionError::Overflow(..) => "integer overflow".to_owned(),
                other => other.to_string(),
            };
            format!("{reason} evaluating rule: {}", rule_name(rule))
        }
    };
    FieldError::new(
        path,
        ErrorType::Invalid,
        Some(go_quote(type_name)),
        detail,
        rule.rule.clone(),
    )
}

/// A rule this library cannot evaluate (it uses a function only the API server has): a warning,
/// since the cluster may still refuse the object.
fn not_checked(path: String, rule: &ValidationRule, reason: &str) -> FieldError {
    let mut error = FieldError::new(
        path,
        ErrorType::Invalid,
        None,
        format!("rule not checked offline ({reason}): {}", rule.rule.trim()),
        rule.rule.clone(),
    );
    error.warning = true;
    error
}

/// `path` extended by a rule's `fieldPath` (`.spec.replicas`, `.labels['a.b']`), following the
/// schema; `None` when the field path does not fit the schema.
fn with_field_path(
    path: &FieldPath,
    schema: &JSONSchemaProps,
    field_path: &str,
) -> Option<FieldPath> {
    let mut path = path.clone();
    let mut schema = schema;
    let mut rest = field_path;
    while !rest.is_empty() {
        let name;
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            name = after[..end].to_owned();
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let (quoted, after) = split_quoted(after)?;
            name = quoted;
            rest = after.strip_prefix(']')?;
        } else {
            return None;
        }
        if let Some(property) = schema.property(&name) {
            path = path.field(&name);
            schema = property;
        } else if let Some(values) = schema.map_values() {
            path = path.key(&name);
            schema = values;
        } else {
            return None;
        }
    }
    Some(path)
}

/// The text of a single-quoted string up to its closing quote (escapes resolved), and what
/// follows the quote.
fn split_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' => return Some((value, &text[at + 1..])),
            '\\' => value.push(match chars.next()?.1 {
                'n' => '\n',
                't' => '\t',
                other => other,
            }),
            c => value.push(c),
        }
    }
    None
}

/// A JSON value as CEL sees it under `schema`: objects with declared properties expose those
/// (under their escaped names), maps expose every key, numbers stay integers or doubles.
fn to_cel(value: &Value, schema: Option<&JSONSchemaProps>) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(flag) => cel::Value::Bool(*flag),
        Value::String(text) => cel::Value::String(Arc::new(text.clone())),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => cel::Value::Int(integer),
            None => cel::Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(items) => {
            let item_schema = schema.and_then(Structural::list_items);
            cel::Value::List(Arc::new(
                items.iter().map(|item| to_cel(item, item_schema)).collect(),
            ))
        }
        Value::Object(fields) => {
            let mut map = HashMap::new();
            for (name, child) in fields {
                let entry = match schema {
                    Some(schema) if schema.has_properties() => schema
                        .property(name)
                        .and_then(|property| Some((escape(name)?, to_cel(child, Some(property))))),
                    Some(schema) => Some((name.clone(), to_cel(child, schema.map_values()))),
                    None => Some((name.clone(), to_cel(child, None))),
                };
                if let Some((key, value)) = entry {
                    map.insert(Key::String(Arc::new(key)), value);
                }
            }
            cel::Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// CEL words the API server escapes when they name a property (`__namespace__`).
const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A property name as CEL rules spell it (`x-y` is `x__dash__y`); `None` when it cannot be.
fn escape(name: &str) -> Option<String> {
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut escaped = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            escaped.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => escaped.push_str("__dot__"),
            '-' => escaped.push_str("__dash__"),
            '/' => escaped.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => escaped.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A map of objects under `spec.items`, each holding `rules`.
    fn schema(rules: Value) -> JSONSchemaProps {
        serde_json::from_value(json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"items": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "x-kubernetes-validations": rules,
                        "properties": {
                            "replicas": {"type": "integer"},
                            "name": {"type": "string"},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "x-y": {"type": "string"}
                        }
                    }
                }}
            }}
        }))
        .unwrap()
    }

    fn run(rules: Value, item: Value, old_item: Option<Value>) -> Vec<(String, String, bool)> {
        let wrap = |item: Value| json!({"spec": {"items": {"A": item}}});
        let object = wrap(item);
        let old = old_item.map(wrap);
        validate(&object, old.as_ref(), &schema(rules))
            .into_iter()
            .map(|e| (e.path.clone(), e.message(), e.warning))
            .collect()
    }

    #[test]
    fn rules_on_create() {
        let at = "spec.items[A]";
        let cases = [
            (
                "passes",
                json!([{"rule": "self.replicas >= 0"}]),
                json!({"replicas": 1}),
                vec![],
            ),
            (
                "message",
                json!([{"rule": "self.replicas >= 0", "message": "replicas must not be negative"}]),
                json!({"replicas": -1}),
                vec![(at, "Invalid value: replicas must not be negative", false)],
            ),
            (
                "no message: the rule text",
                json!([{"rule": "self.replicas >= 0"}]),
                json!({"replicas": -1}),
                vec![(at, "Invalid value: failed rule: self.replicas >= 0", false)],
            ),
            (
                "has() and size()",
                json!([{"rule": "!has(self.name) || size(self.name) <= 3", "message": "short names"}]),
                json!({"name": "long"}),
                vec![(at, "Invalid value: short names", false)],
            ),
            (
                "has() of an absent field",
                json!([{"rule": "!has(self.name) || size(self.name) <= 3"}]),
                json!({}),
                vec![],
            ),
            (
                "fieldPath and reason",
                json!([{"rule": "self.replicas < 5", "message": "too many", "fieldPath": ".replicas", "reason": "FieldValueForbidden"}]),
                json!({"replicas": 9}),
                vec![("spec.items[A].replicas", "Forbidden: too many", false)],
            ),
            (
                "messageExpression",
                json!([{"rule": "self.replicas < 5", "messageExpression": "'replicas is ' + string(self.replicas)"}]),
                json!({"replicas": 9}),
                vec![(at, "Invalid value: replicas is 9", false)],
            ),
            (
                "a missing key is an evaluation error",
                json!([{"rule": "self.replicas > 0", "message": "positive"}]),
                json!({}),
                vec![(
                    at,
                    r#"Invalid value: "object": no such key: replicas evaluating rule: positive"#,
                    false,
                )],
            ),
            (
                "escaped property names",
                json!([{"rule": "self.x__dash__y == 'ok'"}]),
                json!({"x-y": "ok"}),
                vec![],
            ),
            (
                "list macros and string extensions",
                json!([{"rule": "self.tags.all(t, t.lowerAscii() == t)", "message": "lowercase tags"}]),
                json!({"tags": ["a", "B"]}),
                vec![(at, "Invalid value: lowercase tags", false)],
            ),
            (
                "transition rules wait for an old object",
                json!([{"rule": "self.replicas >= oldSelf.replicas", "message": "no scaling down"}]),
                json!({"replicas": 1}),
                vec![],
            ),
            (
                "optionalOldSelf runs on create",
                json!([{"rule": "oldSelf.hasValue() || self.replicas == 1", "message": "start with one", "optionalOldSelf": true}]),
                json!({"replicas": 2}),
                vec![(at, "Invalid value: start with one", false)],
            ),
        ];
        for (name, rules, item, expected) in cases {
            let expected: Vec<(String, String, bool)> = expected
                .into_iter()
                .map(|(p, m, w)| (p.to_owned(), m.to_owned(), w))
                .collect();
            assert_eq!(run(rules, item, None), expected, "{name}");
        }
    }

    #[test]
    fn transition_rules_on_update() {
        let immutable =
            json!([{"rule": "self.name == oldSelf.name", "message": "name is immutable"}]);
        let shrink = json!([{"rule": "self.replicas >= oldSelf.replicas", "message": "no scaling down", "reason": "FieldValueForbidden"}]);
        let at = "spec.items[A]";
        let cases = [
            (
                "same name",
                immutable.clone(),
                json!({"name": "a"}),
                json!({"name": "a", "replicas": 1}),
                vec![],
            ),
            (
                "renamed",
                immutable.clone(),
                json!({"name": "b"}),
                json!({"name": "a"}),
                vec![(at, "Invalid value: name is immutable", false)],
            ),
            (
                "scaled up",
                shrink.clone(),
                json!({"replicas": 3}),
                json!({"replicas": 2}),
                vec![],
            ),
            (
                "scaled down",
                shrink,
                json!({"replicas": 1}),
                json!({"replicas": 2}),
                vec![(at, "Forbidden: no scaling down", false)],
            ),
        ];
        for (name, rules, item, old_item, expected) in cases {
            let expected: Vec<(String, String, bool)> = expected
                .into_iter()
                .map(|(p, m, w)| (p.to_owned(), m.to_owned(), w))
                .collect();
            assert_eq!(run(rules, item, Some(old_item)), expected, "{name}");
        }
    }

    #[test]
    fn failures_of_unchanged_values_are_warnings() {
        let rules = json!([{"rule": "self.replicas >= 0", "message": "not negative"}]);
        let unchanged = run(
            rules.clone(),
            json!({"replicas": -1}),
            Some(json!({"replicas": -1})),
        );
        assert_eq!(
            unchanged,
            vec![(
                "spec.items[A]".to_owned(),
                "Invalid value: not negative".to_owned(),
                true
            )]
        );
        let changed = run(
            rules,
            json!({"replicas": -2}),
            Some(json!({"replicas": -1})),
        );
        assert_eq!(
            changed,
            vec![(
                "spec.items[A]".to_owned(),
                "Invalid value: not negative".to_owned(),
                false
            )]
        );
    }

    #[test]
    fn functions_only_the_api_server_has_leave_a_warning() {
        let findings = run(
            json!([{"rule": "isURL(self.name)"}]),
            json!({"name": "x"}),
            None,
        );
        assert_eq!(findings.len(), 1);
        assert!(findings[0].2, "{findings:?}");
        assert!(
            findings[0].1.contains("rule not checked offline"),
            "{findings:?}"
        );
    }

    #[test]
    fn escapes_property_names_as_the_api_server_does() {
        let cases = [
            ("replicas", Some("replicas")),
            ("x-y", Some("x__dash__y")),
            ("a.b/c", Some("a__dot__b__slash__c")),
            ("a__b", Some("a__underscores__b")),
            ("namespace", Some("__namespace__")),
            ("1st", None),
            ("a b", None),
        ];
        for (name, escaped) in cases {
            assert_eq!(escape(name).as_deref(), escaped, "{name}");
        }
    }
}
