//! Minting and the keep/renew decisions, with an injected clock.

use dynamo_certgen::inspect::{self, parse_certificates};
use dynamo_certgen::mint::{self, KeyAlgorithm, service_dns_names};
use dynamo_certgen::plan::{Decision, Material, Requirements, apply, decide};
use time::{Duration, OffsetDateTime};

fn requirements(service: &str) -> Requirements {
    Requirements {
        dns_names: service_dns_names(service, "dynamo-system", "cluster.local"),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        leaf_validity_days: 365,
        ca_validity_days: 3650,
        renew_before: Duration::days(30),
    }
}

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// A fresh, valid set of material, as a first run stores it.
fn fresh(req: &Requirements, now: OffsetDateTime) -> Material {
    let decision = decide(&Material::default(), req, now);
    assert!(
        matches!(decision, Decision::IssueCaAndLeaf { .. }),
        "{decision}"
    );
    apply(&decision, &Material::default(), req, now).unwrap()
}

fn reason(decision: &Decision) -> &str {
    match decision {
        Decision::IssueLeaf { reason } | Decision::IssueCaAndLeaf { reason } => reason,
        Decision::Keep { .. } => panic!("expected a renewal, got {decision}"),
    }
}

#[test]
fn minted_pair_has_the_service_names_and_verifies_against_its_ca() {
    let req = requirements("dynamo-webhook");
    let material = fresh(&req, start());
    let leaf = &parse_certificates(material.tls_crt.as_ref().unwrap()).unwrap()[0];
    let cas = parse_certificates(material.ca_crt.as_ref().unwrap()).unwrap();
    assert_eq!(cas.len(), 1);
    assert!(cas[0].is_ca && !leaf.is_ca);
    assert_eq!(
        leaf.dns_names,
        [
            "dynamo-webhook",
            "dynamo-webhook.dynamo-system",
            "dynamo-webhook.dynamo-system.svc",
            "dynamo-webhook.dynamo-system.svc.cluster.local"
        ]
    );
    assert!(inspect::is_signed_by(leaf, &cas[0]));
    assert!(
        cas[0].not_after > leaf.not_after,
        "the CA outlives the leaf"
    );
    assert_eq!(leaf.not_after - start(), Duration::days(365));
    let (_, key) = inspect::parse_key(material.tls_key.as_ref().unwrap()).unwrap();
    assert_eq!(key, leaf.public_key);
}

#[test]
fn good_material_is_kept_unchanged() {
    let req = requirements("svc");
    let material = fresh(&req, start());
    let later = start() + Duration::days(100);
    let decision = decide(&material, &req, later);
    assert!(matches!(decision, Decision::Keep { .. }), "{decision}");
    assert_eq!(apply(&decision, &material, &req, later).unwrap(), material);
}

#[test]
fn leaf_inside_the_renewal_window_is_reissued_by_the_same_ca() {
    let req = requirements("svc");
    let material = fresh(&req, start());
    let late = start() + Duration::days(340);
    let decision = decide(&material, &req, late);
    assert!(matches!(decision, Decision::IssueLeaf { .. }), "{decision}");
    assert!(reason(&decision).contains("inside the renewal window of 30 days"));
    let renewed = apply(&decision, &material, &req, late).unwrap();
    assert_eq!(
        renewed.ca_crt, material.ca_crt,
        "the CA and the bundle stay"
    );
    assert_eq!(renewed.ca_key, material.ca_key);
    assert_ne!(renewed.tls_crt, material.tls_crt);
    assert!(matches!(
        decide(&renewed, &req, late),
        Decision::Keep { .. }
    ));
}

#[test]
fn expired_leaf_is_reissued() {
    let req = requirements("svc");
    let material = fresh(&req, start());
    let decision = decide(&material, &req, start() + Duration::days(400));
    assert!(reason(&decision).contains("expired"), "{decision}");
}

#[test]
fn missing_san_is_reissued_and_named() {
    let material = fresh(&requirements("old-name"), start());
    let decision = decide(&material, &requirements("new-name"), start());
    assert!(matches!(decision, Decision::IssueLeaf { .. }), "{decision}");
    assert!(reason(&decision).starts_with("SAN missing: new-name, new-name.dynamo-system"));
}

#[test]
fn key_that_does_not_match_the_certificate_is_replaced() {
    let req = requirements("svc");
    let mut material = fresh(&req, start());
    material.tls_key = fresh(&req, start()).tls_key;
    assert_eq!(
        reason(&decide(&material, &req, start())),
        "tls.key does not match tls.crt"
    );
}

#[test]
fn certificate_from_a_foreign_ca_is_replaced() {
    let req = requirements("svc");
    let mut material = fresh(&req, start());
    let foreign = fresh(&req, start());
    material.ca_crt = foreign.ca_crt.clone();
    material.ca_key = foreign.ca_key.clone();
    let decision = decide(&material, &req, start());
    assert_eq!(reason(&decision), "tls.crt is not signed by ca.crt");
    let renewed = apply(&decision, &material, &req, start()).unwrap();
    assert_eq!(renewed.ca_crt, foreign.ca_crt);
}

#[test]
fn garbage_pem_is_replaced_with_the_reason() {
    let req = requirements("svc");
    let mut material = fresh(&req, start());
    material.tls_crt = Some(
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n".to_vec(),
    );
    assert!(reason(&decide(&material, &req, start())).starts_with("tls.crt: invalid certificate"));
    material.tls_crt = Some(b"hello".to_vec());
    assert!(reason(&decide(&material, &req, start())).starts_with("tls.crt: "));
}

#[test]
fn ca_without_its_key_is_kept_while_the_leaf_is_good_and_rotated_with_both_cas_trusted() {
    // A Secret written by a tool that does not store ca.key, with a CA of 400 days.
    let req = requirements("svc");
    let short_ca = Requirements {
        ca_validity_days: 400,
        ..req.clone()
    };
    let mut material = fresh(&short_ca, start());
    material.ca_key = None;
    assert!(matches!(
        decide(&material, &req, start()),
        Decision::Keep { .. }
    ));

    let late = start() + Duration::days(340);
    let decision = decide(&material, &req, late);
    assert!(
        matches!(decision, Decision::IssueCaAndLeaf { .. }),
        "{decision}"
    );
    assert!(
        reason(&decision).starts_with("ca.key missing"),
        "{decision}"
    );
    let rotated = apply(&decision, &material, &req, late).unwrap();
    let bundle = parse_certificates(rotated.ca_crt.as_ref().unwrap()).unwrap();
    let old = &parse_certificates(material.ca_crt.as_ref().unwrap()).unwrap()[0];
    assert_eq!(bundle.len(), 2, "new CA first, old CA still trusted");
    assert_eq!(&bundle[1], old);
    let leaf = &parse_certificates(rotated.tls_crt.as_ref().unwrap()).unwrap()[0];
    assert!(inspect::is_signed_by(leaf, &bundle[0]));
    assert!(matches!(
        decide(&rotated, &req, late),
        Decision::Keep { .. }
    ));

    // Once the old CA has expired, the bundle drops it and keeps everything else.
    let after_old_ca = start() + Duration::days(500);
    let decision = decide(&rotated, &req, after_old_ca);
    assert!(matches!(decision, Decision::Keep { .. }), "{decision}");
    let pruned = apply(&decision, &rotated, &req, after_old_ca).unwrap();
    let bundle = parse_certificates(pruned.ca_crt.as_ref().unwrap()).unwrap();
    assert_eq!(bundle.len(), 1);
    assert_eq!(pruned.tls_crt, rotated.tls_crt);
}

#[test]
fn ca_that_would_expire_before_a_new_leaf_is_replaced() {
    let req = requirements("svc");
    let material = fresh(&req, start());
    // The CA (3650 days) has less than a leaf's validity left; the leaf itself is also due.
    let late = start() + Duration::days(3400);
    let mut aged = material.clone();
    aged.tls_crt = None;
    let decision = decide(&aged, &req, late);
    assert!(
        matches!(decision, Decision::IssueCaAndLeaf { .. }),
        "{decision}"
    );
    assert!(reason(&decision).contains("CA expires at"), "{decision}");
}

#[test]
fn switching_key_type_reissues_and_rsa_keys_work() {
    let ecdsa = requirements("svc");
    let material = fresh(&ecdsa, start());
    let rsa = Requirements {
        key_algorithm: KeyAlgorithm::Rsa2048,
        ..ecdsa
    };
    let decision = decide(&material, &rsa, start());
    assert_eq!(reason(&decision), "key type differs from rsa-2048");
    let renewed = apply(&decision, &material, &rsa, start()).unwrap();
    assert!(String::from_utf8_lossy(renewed.tls_key.as_ref().unwrap()).contains("PRIVATE KEY"));
    assert!(matches!(
        decide(&renewed, &rsa, start()),
        Decision::Keep { .. }
    ));
}

#[test]
fn rsa_ca_signs_an_rsa_leaf() {
    let now = start();
    let ca = mint::mint_ca(KeyAlgorithm::Rsa2048, now, 10).unwrap();
    let leaf = mint::mint_leaf(&ca, &["a.b.svc".into()], KeyAlgorithm::Rsa2048, now, 5).unwrap();
    let ca = &parse_certificates(ca.cert.as_bytes()).unwrap()[0];
    let leaf = &parse_certificates(leaf.cert.as_bytes()).unwrap()[0];
    assert!(inspect::is_signed_by(leaf, ca));
}
