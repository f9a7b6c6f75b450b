//! The SSH key pair multinode workers use for `mpirun`: an RSA key in OpenSSH's own formats
//! (`openssh-key-v1` private key, `ssh-rsa` public line), stored once in a Secret and never
//! replaced, so running workers keep trusting each other across upgrades.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{LineEnding, PrivateKey};

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
    #[error("encoding the key in OpenSSH format: {0}")]
    Encode(#[from] ssh_key::Error),
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
}

/// A new RSA key pair of `bits` bits (at least 2048), in OpenSSH formats with `comment`.
pub fn generate(bits: usize, comment: &str) -> Result<SshKeyPair, SshError> {
    let keypair = RsaKeypair::random(&mut rand::thread_rng(), bits)
        .map_err(|e| SshError::Generate(bits, e.to_string()))?;
    let private = PrivateKey::new(KeypairData::from(keypair), comment)?;
    Ok(SshKeyPair {
        private_pem: private.to_openssh(LineEnding::LF)?.to_string(),
        public_line: format!("{}\n", private.public_key().to_openssh()?),
    })
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
    fn private_key_reads_back_with_its_public_line_and_comment() {
        let pair = generate(2048, "mpirun@dynamo").unwrap();
        let parsed = PrivateKey::from_openssh(&pair.private_pem).unwrap();
        assert_eq!(parsed.comment(), "mpirun@dynamo");
        assert!(!parsed.is_encrypted());
        assert!(parsed.key_data().rsa().is_some());
        assert_eq!(
            format!("{}\n", parsed.public_key().to_openssh().unwrap()),
            pair.public_line
        );
    }

    #[test]
    fn keys_below_2048_bits_are_refused() {
        assert!(matches!(
            generate(1024, "test"),
            Err(SshError::Generate(1024, _))
        ));
    }

    #[test]
    fn private_key_is_openssh_v1_armour_and_public_key_one_ssh_rsa_line() {
        let pair = generate(2048, "test").unwrap();
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
