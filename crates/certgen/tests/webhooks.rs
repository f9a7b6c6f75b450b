//! What the cert generator writes into a webhook configuration, decided without a cluster:
//! the entries it applies and whether the live object already holds them.

use dynamo_certgen::cluster::{desired_webhooks, stale_count};
use serde_json::{Value, json};

fn template() -> Vec<Value> {
    vec![
        json!({"name": "a.kb.io", "failurePolicy": "Fail", "sideEffects": "None",
               "clientConfig": {"service": {"name": "svc", "namespace": "ns", "path": "/a", "port": 443}},
               "rules": [{"operations": ["CREATE", "UPDATE"], "resources": ["as"]}]}),
        json!({"name": "b.kb.io", "failurePolicy": "Fail", "sideEffects": "None",
               "clientConfig": {"service": {"name": "svc", "namespace": "ns", "path": "/b", "port": 443}},
               "rules": [{"operations": ["CREATE"], "resources": ["bs"]}]}),
    ]
}

/// What the API server returns for an applied entry: ours plus defaulted fields.
fn as_stored(mut webhook: Value) -> Value {
    webhook["matchPolicy"] = json!("Equivalent");
    webhook["timeoutSeconds"] = json!(10);
    webhook["rules"][0]["scope"] = json!("*");
    webhook
}

const BUNDLE: &[u8] = b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";

#[test]
fn a_template_is_applied_in_full_with_the_bundle_in_every_webhook() {
    let desired = desired_webhooks(&[], Some(&template()), BUNDLE);
    assert_eq!(desired.len(), 2);
    for webhook in &desired {
        let encoded = webhook["clientConfig"]["caBundle"].as_str().unwrap();
        assert_eq!(
            encoded,
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
        );
        assert_eq!(webhook["clientConfig"]["service"]["name"], "svc");
        assert_eq!(webhook["sideEffects"], "None");
    }
}

#[test]
fn an_empty_configuration_is_stale_by_every_template_webhook() {
    let desired = desired_webhooks(&[], Some(&template()), BUNDLE);
    assert_eq!(stale_count(&[], &desired, true), 2);
}

#[test]
fn a_configuration_holding_the_template_is_current_despite_defaulted_fields() {
    let desired = desired_webhooks(&[], Some(&template()), BUNDLE);
    let live: Vec<Value> = desired.iter().cloned().map(as_stored).collect();
    assert_eq!(stale_count(&live, &desired, true), 0);
}

#[test]
fn a_changed_field_an_old_bundle_or_a_leftover_webhook_is_stale() {
    let desired = desired_webhooks(&[], Some(&template()), BUNDLE);
    let live: Vec<Value> = desired.iter().cloned().map(as_stored).collect();

    let mut changed = live.clone();
    changed[1]["failurePolicy"] = json!("Ignore");
    assert_eq!(stale_count(&changed, &desired, true), 1);

    let mut old_bundle = live.clone();
    old_bundle[0]["clientConfig"]["caBundle"] = json!("b2xk");
    assert_eq!(stale_count(&old_bundle, &desired, true), 1);

    let mut rules = live.clone();
    rules[0]["rules"][0]["operations"] = json!(["CREATE"]);
    assert_eq!(stale_count(&rules, &desired, true), 1);

    let mut extra = live.clone();
    extra.push(json!({"name": "gone.kb.io"}));
    assert_eq!(stale_count(&extra, &desired, true), 1);
}

#[test]
fn without_a_template_only_the_bundle_of_existing_webhooks_is_set() {
    let live = vec![
        as_stored(template()[0].clone()),
        as_stored(template()[1].clone()),
    ];
    let desired = desired_webhooks(&live, None, BUNDLE);
    assert_eq!(desired.len(), 2);
    assert_eq!(
        desired[0].as_object().unwrap().len(),
        2,
        "only name and clientConfig"
    );
    assert_eq!(desired[1]["name"], "b.kb.io");
    assert_eq!(stale_count(&live, &desired, false), 2);
    let mut current = live.clone();
    for webhook in &mut current {
        webhook["clientConfig"]["caBundle"] = desired[0]["clientConfig"]["caBundle"].clone();
    }
    assert_eq!(stale_count(&current, &desired, false), 0);
}
