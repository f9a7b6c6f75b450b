//! Minting the webhook CA and serving certificate (rcgen).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Key type of new keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "rsa-4096")]
    Rsa4096,
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("generating a {0} key: {1}")]
    KeyGeneration(KeyAlgorithm, String),
    #[error("building the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// Certificates are back-dated a little so a node whose clock lags still accepts them.
const CLOCK_SKEW: Duration = Duration::minutes(5);

pub fn generate_key(algorithm: KeyAlgorithm) -> Result<KeyPair, MintError> {
    let bits = match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            return KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                .map_err(|e| MintError::KeyGeneration(algorithm, e.to_string()));
        }
        KeyAlgorithm::Rsa2048 => 2048,
        KeyAlgorithm::Rsa3072 => 3072,
        KeyAlgorithm::Rsa4096 => 4096,
    };
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| MintError::KeyGeneration(algorithm, e.to_string()))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| MintError::KeyGeneration(algorithm, e.to_string()))?;
    KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &PKCS_RSA_SHA256)
        .map_err(|e| MintError::KeyGeneration(algorithm, e.to_string()))
}

fn random_serial() -> SerialNumber {
    // 16 random bytes with the top bit cleared: a positive 127-bit serial (RFC 5280 4.1.2.2).
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, days: u32) {
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::days(i64::from(days));
}

/// A self-signed CA that may only sign certificates and CRLs.
pub fn mint_ca(algorithm: KeyAlgorithm, now: OffsetDateTime, days: u32) -> Result<Pem, MintError> {
    let key = generate_key(algorithm)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Dynamo Webhook CA");
    name.push(DnType::OrganizationName, "Dynamo");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial());
    validity(&mut params, now, days);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A serving certificate for `dns_names`, signed by `ca`.
pub fn mint_leaf(
    ca: &Pem,
    dns_names: &[String],
    algorithm: KeyAlgorithm,
    now: OffsetDateTime,
    days: u32,
) -> Result<Pem, MintError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let key = generate_key(algorithm)?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    let mut name = DistinguishedName::new();
    if let Some(first) = dns_names.first() {
        name.push(DnType::CommonName, first.as_str());
    }
    params.distinguished_name = name;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    validity(&mut params, now, days);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The DNS names a webhook Service is reached by.
pub fn service_dns_names(service: &str, namespace: &str, cluster_domain: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{cluster_domain}"),
    ]
}
