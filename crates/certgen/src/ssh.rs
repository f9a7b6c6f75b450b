//! The SSH key pair multinode workers use for `mpirun`: an RSA key in OpenSSH's own formats
//! (`openssh-key-v1` private key, `ssh-rsa` public line), stored once in a Secret and never
//! replaced, so running workers keep trusting each other across upgrades.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use rand::RngCore as _;
use rsa::RsaPrivateKey;
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};

use crate::cluster::{FIELD_MANAGER, MANAGED_BY_LABEL};

/// Secret keys, as the upstream chart names them.
pub const PRIVATE_KEY: &str = "private.key";
pub const PUBLIC_KEY: &str = "private.key.pub";

/// A key pair in OpenSSH formats.
#[derive(Clone, Debug)]
pub struct SshKeyPair {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` armour, unencrypted.
    pub private_pem: String,
    /// One `ssh-rsa AAAA... comment` line.
    pub public_line: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("generating an RSA-{0} key: {1}")]
    Generate(usize, String),
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
}

/// SSH wire encoding (RFC 4251): length-prefixed strings and mpints.
#[derive(Default)]
struct Wire(Vec<u8>);

impl Wire {
    fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn string(&mut self, bytes: &[u8]) -> &mut Self {
        self.u32(bytes.len() as u32);
        self.0.extend_from_slice(bytes);
        self
    }

    /// Two's complement big-endian: a leading zero byte keeps a set high bit positive.
    fn mpint(&mut self, value: &rsa::BigUint) -> &mut Self {
        let mut bytes = value.to_bytes_be();
        while bytes.first() == Some(&0) {
            bytes.remove(0);
        }
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        self.string(&bytes)
    }
}

fn public_blob(key: &RsaPrivateKey) -> Vec<u8> {
    let mut blob = Wire::default();
    blob.string(b"ssh-rsa").mpint(key.e()).mpint(key.n());
    blob.0
}

/// Encodes `key` in OpenSSH formats with `comment`.
pub fn encode(key: &RsaPrivateKey, comment: &str, check: u32) -> SshKeyPair {
    let primes = key.primes();
    let (p, q) = (&primes[0], &primes[1]);
    // iqmp = q^-1 mod p, which is what the rsa crate precomputes as its CRT coefficient.
    let iqmp = key
        .crt_coefficient()
        .expect("a generated two-prime key has a CRT coefficient");
    let mut private = Wire::default();
    private
        .u32(check)
        .u32(check)
        .string(b"ssh-rsa")
        .mpint(key.n())
        .mpint(key.e())
        .mpint(key.d())
        .mpint(&iqmp)
        .mpint(p)
        .mpint(q)
        .string(comment.as_bytes());
    // Unencrypted keys are padded to the 8-byte block size with 1, 2, 3, ...
    let mut pad = 1u8;
    while private.0.len() % 8 != 0 {
        private.0.push(pad);
        pad += 1;
    }
    let public = public_blob(key);
    let mut file = Wire(b"openssh-key-v1\0".to_vec());
    file.string(b"none")
        .string(b"none")
        .string(b"")
        .u32(1)
        .string(&public)
        .string(&private.0);
    let private_pem = pem::encode_config(
        &pem::Pem::new("OPENSSH PRIVATE KEY", file.0),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(&public);
    SshKeyPair {
        private_pem,
        public_line: format!("ssh-rsa {encoded} {comment}\n"),
    }
}

/// A new RSA key pair of `bits` bits.
pub fn generate(bits: usize, comment: &str) -> Result<SshKeyPair, SshError> {
    let mut rng = rand::thread_rng();
    let key =
        RsaPrivateKey::new(&mut rng, bits).map_err(|e| SshError::Generate(bits, e.to_string()))?;
    Ok(encode(&key, comment, rng.next_u32()))
}

/// Creates Secret `name` with a new key pair unless it exists. Returns whether it wrote.
pub async fn ensure_secret(
    api: &Api<Secret>,
    name: &str,
    bits: usize,
    dry_run: bool,
) -> Result<bool, SshError> {
    let api_error = |action: String| move |source| SshError::Api { action, source };
    if api
        .get_opt(name)
        .await
        .map_err(api_error(format!("get Secret {name}")))?
        .is_some()
    {
        tracing::info!("Secret {name} exists; its key pair is kept");
        return Ok(false);
    }
    if dry_run {
        tracing::info!("would create Secret {name} with a new RSA-{bits} key pair");
        return Ok(false);
    }
    let pair = generate(bits, "mpirun@dynamo")?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                FIELD_MANAGER.to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                PRIVATE_KEY.to_owned(),
                ByteString(pair.private_pem.into_bytes()),
            ),
            (
                PUBLIC_KEY.to_owned(),
                ByteString(pair.public_line.into_bytes()),
            ),
        ])),
        ..Default::default()
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    match api.create(&params, &secret).await {
        Ok(_) => {
            tracing::info!("created Secret {name} with a new RSA-{bits} key pair");
            Ok(true)
        }
        // Another run created it between our read and our write: theirs is kept.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(source) => Err(SshError::Api {
            action: format!("create Secret {name}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_keeps_positive_numbers_positive() {
        let mut wire = Wire::default();
        wire.mpint(&rsa::BigUint::from(0x80u32));
        assert_eq!(wire.0, [0, 0, 0, 2, 0, 0x80]);
        let mut wire = Wire::default();
        wire.mpint(&rsa::BigUint::from(0x7fu32));
        assert_eq!(wire.0, [0, 0, 0, 1, 0x7f]);
    }

    #[test]
    fn private_key_section_is_padded_and_armoured() {
        let pair = generate(1024, "test").unwrap();
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(pair.public_line.starts_with("ssh-rsa AAAAB3NzaC1yc2E"));
        assert!(pair.public_line.ends_with(" test\n"));
        let der = pem::parse(&pair.private_pem).unwrap();
        assert!(der.contents().starts_with(b"openssh-key-v1\0"));
    }

    /// OpenSSH itself reads the private key back and derives the same public key.
    #[test]
    fn ssh_keygen_reads_the_private_key() {
        let pair = generate(2048, "mpirun@dynamo").unwrap();
        let dir = std::env::temp_dir().join(format!("dynamo-ssh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("id_rsa");
        std::fs::write(&path, &pair.private_pem).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let output = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("ssh-keygen (openssh-client) must be installed: .ci/run installs it");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            output.status.success(),
            "ssh-keygen rejected the key: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let derived = String::from_utf8(output.stdout).unwrap();
        let ours: Vec<&str> = pair.public_line.split_whitespace().take(2).collect();
        let theirs: Vec<&str> = derived.split_whitespace().take(2).collect();
        assert_eq!(ours, theirs);
    }
}
