//! Comparing a live object with the fields a writer wants, as JSON: what lets the operator
//! and the cert generator skip writes that would change nothing.

use serde_json::Value;

/// Whether `live` holds every field of `desired` with the same value.
///
/// Objects must contain each desired key; lists must match item by item (same length);
/// numbers compare by value. Fields the server added (defaults, status) are ignored.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (_, Value::Null) => true,
        (Value::Object(live), Value::Object(desired)) => desired.iter().all(|(key, value)| {
            value.is_null() || live.get(key).is_some_and(|l| contains(l, value))
        }),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (Value::Number(live), Value::Number(desired)) => live.as_f64() == desired.as_f64(),
        (live, desired) => live == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_with_server_defaults_contains_the_desired_fields() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "main", "image": "a"}]}}}});
        let live = json!({"metadata": {"uid": "x"}, "spec": {"replicas": 2, "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "main", "image": "a", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"replicas": 2}});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn a_changed_value_a_missing_field_or_an_extra_list_item_is_a_difference() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 8000}]}});
        assert!(!contains(
            &json!({"spec": {"replicas": 3, "ports": [{"port": 8000}]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"spec": {"ports": [{"port": 8000}]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"spec": {"replicas": 2, "ports": [{"port": 8000}, {"port": 1}]}}),
            &desired
        ));
        assert!(contains(
            &json!({"spec": {"replicas": 2.0, "ports": [{"port": 8000}]}}),
            &desired
        ));
    }
}
