//! Deciding what to do with the stored certificate material: keep it, re-issue the serving
//! certificate with the same CA, or replace the CA too. Pure, with the clock passed in.

use time::{Duration, OffsetDateTime};

use crate::inspect::{self, CertInfo};
use crate::mint::{self, KeyAlgorithm, MintError, Pem};

/// Secret keys, as upstream names them, plus `ca.key` so the CA can sign the next leaf.
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
/// The trust bundle: the current CA first, then at most one previous CA still in its validity.
pub const CA_CRT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";

/// What the certificate must satisfy.
#[derive(Clone, Debug)]
pub struct Requirements {
    pub dns_names: Vec<String>,
    pub key_algorithm: KeyAlgorithm,
    pub leaf_validity_days: u32,
    pub ca_validity_days: u32,
    /// Renew when less than this remains.
    pub renew_before: Duration,
}

/// The four Secret values, as stored (any may be missing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Material {
    pub tls_crt: Option<Vec<u8>>,
    pub tls_key: Option<Vec<u8>>,
    pub ca_crt: Option<Vec<u8>>,
    pub ca_key: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep { not_after: OffsetDateTime },
    IssueLeaf { reason: String },
    IssueCaAndLeaf { reason: String },
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keep { not_after } => write!(f, "kept: valid until {not_after}"),
            Self::IssueLeaf { reason } => write!(f, "renewed leaf: {reason}"),
            Self::IssueCaAndLeaf { reason } => write!(f, "renewed CA and leaf: {reason}"),
        }
    }
}

/// The first certificate of `ca.crt`, the current CA, and the other ones (previous CAs).
fn stored_cas(material: &Material) -> Result<Vec<CertInfo>, String> {
    let pem = material.ca_crt.as_deref().ok_or("ca.crt missing")?;
    inspect::parse_certificates(pem).map_err(|e| format!("ca.crt: {e}"))
}

/// Why the stored leaf cannot stay, if it cannot.
fn leaf_problem(
    material: &Material,
    ca: Option<&CertInfo>,
    req: &Requirements,
    now: OffsetDateTime,
) -> Option<String> {
    let Some(pem) = material.tls_crt.as_deref() else {
        return Some("no certificate stored".into());
    };
    let leaf = match inspect::parse_certificates(pem) {
        Ok(certs) => certs
            .into_iter()
            .next()
            .expect("parse_certificates returns at least one"),
        Err(e) => return Some(format!("tls.crt: {e}")),
    };
    let Some(key_pem) = material.tls_key.as_deref() else {
        return Some("tls.key missing".into());
    };
    match inspect::parse_key(key_pem) {
        Err(e) => return Some(format!("tls.key: {e}")),
        Ok((_, public_key)) if public_key != leaf.public_key => {
            return Some("tls.key does not match tls.crt".into());
        }
        Ok((key, _)) if !key_family_matches(&key, req.key_algorithm) => {
            return Some(format!("key type differs from {}", req.key_algorithm));
        }
        Ok(_) => {}
    }
    match ca {
        None => return Some("no CA to verify tls.crt against".into()),
        Some(ca) if !inspect::is_signed_by(&leaf, ca) => {
            return Some("tls.crt is not signed by ca.crt".into());
        }
        Some(_) => {}
    }
    let missing: Vec<&str> = req
        .dns_names
        .iter()
        .filter(|name| !leaf.dns_names.contains(name))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Some(format!("SAN missing: {}", missing.join(", ")));
    }
    if leaf.not_before > now {
        return Some(format!("not valid before {}", leaf.not_before));
    }
    expiry_problem("tls.crt", &leaf, req, now)
}

fn expiry_problem(
    what: &str,
    cert: &CertInfo,
    req: &Requirements,
    now: OffsetDateTime,
) -> Option<String> {
    if cert.not_after <= now {
        return Some(format!("{what} expired at {}", cert.not_after));
    }
    if cert.not_after - now < req.renew_before {
        return Some(format!(
            "{what} expires at {}, inside the renewal window of {} days",
            cert.not_after,
            req.renew_before.whole_days()
        ));
    }
    None
}

fn key_family_matches(key: &rcgen::KeyPair, wanted: KeyAlgorithm) -> bool {
    let is_ecdsa = key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256;
    is_ecdsa == (wanted == KeyAlgorithm::EcdsaP256)
}

/// Why the stored CA cannot sign a new leaf, if it cannot.
fn ca_reuse_problem(
    material: &Material,
    ca: &CertInfo,
    req: &Requirements,
    now: OffsetDateTime,
) -> Option<String> {
    if !ca.is_ca {
        return Some("ca.crt is not a CA certificate".into());
    }
    let Some(key_pem) = material.ca_key.as_deref() else {
        return Some("ca.key missing".into());
    };
    match inspect::parse_key(key_pem) {
        Err(e) => return Some(format!("ca.key: {e}")),
        Ok((_, public_key)) if public_key != ca.public_key => {
            return Some("ca.key does not match ca.crt".into());
        }
        Ok(_) => {}
    }
    // A new leaf must not outlive its CA.
    let needed = Duration::days(i64::from(req.leaf_validity_days));
    if ca.not_after - now < needed {
        return Some(format!(
            "CA expires at {}, before a new certificate would",
            ca.not_after
        ));
    }
    None
}

pub fn decide(material: &Material, req: &Requirements, now: OffsetDateTime) -> Decision {
    let cas = stored_cas(material);
    let current_ca = cas.as_ref().ok().and_then(|cas| cas.first());
    let leaf = leaf_problem(material, current_ca, req, now);
    let ca = match current_ca {
        Some(ca) => expiry_problem("ca.crt", ca, req, now),
        None => Some(cas.as_ref().err().cloned().unwrap_or_default()),
    };
    let (leaf, ca) = match (leaf, ca) {
        (None, None) => {
            let leaf = inspect::parse_certificates(material.tls_crt.as_deref().unwrap_or_default());
            let not_after = leaf.ok().and_then(|c| c.first().map(|c| c.not_after));
            return Decision::Keep {
                not_after: not_after.expect("checked by leaf_problem"),
            };
        }
        pair => pair,
    };
    let reuse = match current_ca {
        Some(current) => ca
            .clone()
            .or_else(|| ca_reuse_problem(material, current, req, now)),
        None => ca.clone(),
    };
    match reuse {
        None => Decision::IssueLeaf {
            reason: leaf.unwrap_or_default(),
        },
        Some(ca_reason) => Decision::IssueCaAndLeaf {
            reason: match leaf {
                Some(leaf) if leaf != ca_reason => format!("{ca_reason}; {leaf}"),
                _ => ca_reason,
            },
        },
    }
}

/// The material to store after `decision`, minting what it calls for.
pub fn apply(
    decision: &Decision,
    material: &Material,
    req: &Requirements,
    now: OffsetDateTime,
) -> Result<Material, MintError> {
    let stored_cas = stored_cas(material).unwrap_or_default();
    let (ca, previous) = match decision {
        Decision::Keep { .. } => {
            let mut kept = material.clone();
            let trust = bundle(&stored_cas, now);
            // Rewrite ca.crt only when a previous CA expired, never just to re-encode it.
            if trust.len() < stored_cas.len() {
                kept.ca_crt = Some(
                    trust
                        .iter()
                        .map(|c| c.pem.as_str())
                        .collect::<String>()
                        .into_bytes(),
                );
            }
            return Ok(kept);
        }
        Decision::IssueLeaf { .. } => {
            let current = &stored_cas[0];
            let key = String::from_utf8_lossy(material.ca_key.as_deref().unwrap_or_default());
            (
                Pem {
                    cert: current.pem.clone(),
                    key: key.into_owned(),
                },
                stored_cas.get(1),
            )
        }
        Decision::IssueCaAndLeaf { .. } => (
            mint::mint_ca(req.key_algorithm, now, req.ca_validity_days)?,
            stored_cas.first().filter(|ca| ca.is_ca),
        ),
    };
    let leaf = mint::mint_leaf(
        &ca,
        &req.dns_names,
        req.key_algorithm,
        now,
        req.leaf_validity_days,
    )?;
    let mut trust = ca.cert.clone();
    if let Some(previous) = previous.filter(|p| p.not_after > now && p.pem != ca.cert) {
        trust.push_str(&previous.pem);
    }
    Ok(Material {
        tls_crt: Some(leaf.cert.into_bytes()),
        tls_key: Some(leaf.key.into_bytes()),
        ca_crt: Some(trust.into_bytes()),
        ca_key: Some(ca.key.into_bytes()),
    })
}

/// The stored CAs minus expired previous ones, keeping at most one previous CA.
fn bundle(cas: &[CertInfo], now: OffsetDateTime) -> Vec<&CertInfo> {
    let mut kept = Vec::new();
    if let Some((current, previous)) = cas.split_first() {
        kept.push(current);
        kept.extend(previous.iter().find(|ca| ca.not_after > now));
    }
    kept
}
