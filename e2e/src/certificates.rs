//! Webhook certificates as tests plant and read them: a serving certificate from the stored CA
//! that is about to expire (inside any renewal window), PEM to DER, and what a webhook pod
//! serves.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

use crate::{chart, platform, wait_until};

/// A serving certificate for `service` in `namespace`, signed by the first CA of the
/// cert generator's Secret with its key and valid two more days: inside the renewal window,
/// still served without errors. Made with `openssl`.
pub fn near_expiry_certificate(secret: &Secret, service: &str, namespace: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!(
        "dynamo-near-expiry-{}-{namespace}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let data = secret
        .data
        .as_ref()
        .expect("certificate Secret without data");
    let ca = String::from_utf8(data["ca.crt"].0.clone()).unwrap();
    let first_ca = ca
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    std::fs::write(dir.join("ca.crt"), first_ca).unwrap();
    std::fs::write(dir.join("ca.key"), &data["ca.key"].0).unwrap();
    std::fs::write(dir.join("tls.key"), &data["tls.key"].0).unwrap();
    std::fs::write(
        dir.join("ext"),
        format!(
            "subjectAltName=DNS:{service},DNS:{service}.{namespace},DNS:{service}.{namespace}.svc,DNS:{service}.{namespace}.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .current_dir(&dir)
            .args(args)
            .output()
            .expect("running openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let subject = format!("/CN={service}");
    run(&[
        "req", "-new", "-key", "tls.key", "-subj", &subject, "-out", "leaf.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "leaf.crt",
    ]);
    let pem = std::fs::read(dir.join("leaf.crt")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    pem
}

/// The DER bytes of the first certificate of a PEM text.
pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    chart::base64_decode(&body)
}

/// Waits (30 s) until every webhook pod of `release` in `namespace` serves `der` (the node
/// agent syncs the Secret, the webhook reloads it).
pub async fn wait_served(namespace: &str, release: &str, der: &[u8], what: &str) {
    wait_until(what, Duration::from_secs(30), || async {
        let pods = platform::pods(namespace, release, "webhook").await;
        if pods.is_empty() {
            return None;
        }
        for pod in pods {
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            let served = crate::tls::served_certificate(&format!("{ip}:9443"))
                .await
                .ok()?;
            if served != der {
                return None;
            }
        }
        Some(())
    })
    .await
}
