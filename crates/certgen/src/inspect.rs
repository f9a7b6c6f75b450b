//! Reading back certificates and keys (x509-parser) to decide whether they can stay.

use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// What a certificate says about itself, extracted once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// PEM text of this one certificate.
    pub pem: String,
    pub der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub dns_names: Vec<String>,
    /// DER SubjectPublicKeyInfo, to match keys and issuers.
    pub public_key: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InspectError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("invalid private key: {0}")]
    Key(String),
}

/// Parses every certificate of a PEM bundle, in order.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertInfo>, InspectError> {
    let mut certs = Vec::new();
    let blocks = pem::parse_many(pem).map_err(|e| InspectError::Pem(e.to_string()))?;
    for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        let (_, cert) = x509_parser::parse_x509_certificate(block.contents())
            .map_err(|e| InspectError::Certificate(e.to_string()))?;
        certs.push(info(&cert, block.contents())?);
    }
    if certs.is_empty() {
        return Err(InspectError::NoCertificate);
    }
    Ok(certs)
}

fn info(cert: &X509Certificate<'_>, der: &[u8]) -> Result<CertInfo, InspectError> {
    let time = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|e| InspectError::Certificate(e.to_string()))
    };
    let dns_names = cert
        .subject_alternative_name()
        .map_err(|e| InspectError::Certificate(e.to_string()))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        pem: pem_encode(der),
        der: der.to_vec(),
        not_before: time(cert.validity().not_before)?,
        not_after: time(cert.validity().not_after)?,
        is_ca: cert.is_ca(),
        dns_names,
        public_key: cert.public_key().raw.to_vec(),
    })
}

fn pem_encode(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}

/// Parses a PEM private key and returns it with the DER SubjectPublicKeyInfo it belongs to.
pub fn parse_key(pem: &[u8]) -> Result<(KeyPair, Vec<u8>), InspectError> {
    let text = std::str::from_utf8(pem).map_err(|e| InspectError::Key(e.to_string()))?;
    let key = KeyPair::from_pem(text).map_err(|e| InspectError::Key(e.to_string()))?;
    let public_key = key.subject_public_key_info();
    Ok((key, public_key))
}

/// Whether `cert` carries a valid signature by the holder of `issuer_public_key`.
pub fn is_signed_by(cert: &CertInfo, issuer: &CertInfo) -> bool {
    let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&cert.der) else {
        return false;
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(&issuer.der) else {
        return false;
    };
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}
