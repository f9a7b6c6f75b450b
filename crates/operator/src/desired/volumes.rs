//! Volumes of a component pod: one PVC volume per `volumeMounts` entry and the `/dev/shm` tmpfs.

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use dynamo_api::v1alpha1::{BackendFramework, DynamoComponentDeploymentSharedSpec};

use super::BuildError;
use super::naming::{
    SHARED_MEMORY_DEFAULT_SIZE, SHARED_MEMORY_PATH, SHARED_MEMORY_VOLUME,
    VLLM_COMPILATION_CACHE_PATH,
};

/// Pod volumes and the main container's mounts generated from a service spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComponentVolumes {
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
    /// Where the first `useAsCompilationCache` volume is mounted.
    pub compilation_cache: Option<String>,
}

/// PVC volumes (volume name = claim name = `name`; mounted at `mountPoint`, or the backend's
/// compilation cache path for `useAsCompilationCache`), then the shared memory volume unless
/// `sharedMemory.disabled` (emptyDir, medium Memory, `sharedMemory.size` or 8Gi, at /dev/shm).
pub fn component_volumes(
    spec: &DynamoComponentDeploymentSharedSpec,
    backend: Option<BackendFramework>,
) -> Result<ComponentVolumes, BuildError> {
    let mut generated = ComponentVolumes::default();
    for entry in spec.volume_mounts.iter().flatten() {
        let mount_path = match entry.mount_point.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => path.to_owned(),
            None if entry.use_as_compilation_cache == Some(true) => match backend {
                Some(BackendFramework::Vllm) => VLLM_COMPILATION_CACHE_PATH.to_owned(),
                other => {
                    return Err(BuildError::NoCompilationCacheDefault {
                        volume: entry.name.clone(),
                        backend: other.map_or("unset".to_owned(), |b| b.to_string()),
                    });
                }
            },
            None => {
                return Err(BuildError::MissingMountPoint {
                    volume: entry.name.clone(),
                });
            }
        };
        generated.volumes.push(Volume {
            name: entry.name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: entry.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        if entry.use_as_compilation_cache == Some(true) && generated.compilation_cache.is_none() {
            generated.compilation_cache = Some(mount_path.clone());
        }
        generated.mounts.push(VolumeMount {
            name: entry.name.clone(),
            mount_path,
            ..Default::default()
        });
    }
    let shared_memory = spec.shared_memory.as_ref();
    if !shared_memory.and_then(|s| s.disabled).unwrap_or(false) {
        let size = shared_memory
            .and_then(|s| s.size.clone())
            .filter(|q| !q.0.is_empty())
            .unwrap_or_else(|| Quantity(SHARED_MEMORY_DEFAULT_SIZE.to_owned()));
        generated.volumes.push(Volume {
            name: SHARED_MEMORY_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: Some(size),
            }),
            ..Default::default()
        });
        generated.mounts.push(VolumeMount {
            name: SHARED_MEMORY_VOLUME.to_owned(),
            mount_path: SHARED_MEMORY_PATH.to_owned(),
            ..Default::default()
        });
    }
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn build(yaml: &str, backend: Option<BackendFramework>) -> Result<Value, BuildError> {
        let spec: DynamoComponentDeploymentSharedSpec = dynamo_api::parse::from_yaml(yaml).unwrap();
        component_volumes(&spec, backend).map(|v| {
            let mut built = json!({
                "volumes": serde_json::to_value(&v.volumes).unwrap(),
                "mounts": serde_json::to_value(&v.mounts).unwrap(),
            });
            if let Some(path) = v.compilation_cache {
                built["compilationCache"] = path.into();
            }
            built
        })
    }

    fn shm(size: &str) -> (Value, Value) {
        (
            json!({"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": size}}),
            json!({"name": "shared-memory", "mountPath": "/dev/shm"}),
        )
    }

    fn pvc(name: &str, path: &str) -> (Value, Value) {
        (
            json!({"name": name, "persistentVolumeClaim": {"claimName": name}}),
            json!({"name": name, "mountPath": path}),
        )
    }

    fn expect(entries: &[(Value, Value)]) -> Value {
        json!({
            "volumes": entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
            "mounts": entries.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
        })
    }

    fn with_cache(mut expected: Value, path: &str) -> Value {
        expected["compilationCache"] = path.into();
        expected
    }

    #[test]
    fn shared_memory_default_size_and_disabled() {
        let cases = [
            ("{}", expect(&[shm("8Gi")])),
            ("sharedMemory: {size: 16Gi}", expect(&[shm("16Gi")])),
            ("sharedMemory: {disabled: false}", expect(&[shm("8Gi")])),
            ("sharedMemory: {disabled: true, size: 1Gi}", expect(&[])),
        ];
        for (yaml, expected) in cases {
            assert_eq!(build(yaml, None).unwrap(), expected, "{yaml}");
        }
    }

    #[test]
    fn volume_mounts_and_compilation_cache() {
        let vllm = Some(BackendFramework::Vllm);
        let cases = [
            (
                "volumeMounts: [{name: model-cache, mountPoint: /models}]",
                None,
                expect(&[pvc("model-cache", "/models"), shm("8Gi")]),
            ),
            (
                "volumeMounts: [{name: cc, useAsCompilationCache: true}]",
                vllm,
                with_cache(
                    expect(&[pvc("cc", "/root/.cache/vllm"), shm("8Gi")]),
                    "/root/.cache/vllm",
                ),
            ),
            // An explicit mountPoint wins over the cache default, on any backend.
            (
                "volumeMounts: [{name: cc, mountPoint: /cache, useAsCompilationCache: true}]",
                Some(BackendFramework::Sglang),
                with_cache(expect(&[pvc("cc", "/cache"), shm("8Gi")]), "/cache"),
            ),
            (
                "volumeMounts: [{name: a, mountPoint: /a}, {name: b, mountPoint: /b}]\nsharedMemory: {disabled: true}",
                vllm,
                expect(&[pvc("a", "/a"), pvc("b", "/b")]),
            ),
        ];
        for (yaml, backend, expected) in cases {
            assert_eq!(build(yaml, backend).unwrap(), expected, "{yaml}");
        }
    }

    #[test]
    fn volume_mount_errors() {
        let cases = [
            (
                "volumeMounts: [{name: cc, useAsCompilationCache: true}]",
                Some(BackendFramework::Sglang),
                "volumeMounts entry \"cc\": useAsCompilationCache needs a mountPoint for backend sglang (only vllm has a default, /root/.cache/vllm)",
            ),
            (
                "volumeMounts: [{name: cc, useAsCompilationCache: true}]",
                Some(BackendFramework::Trtllm),
                "volumeMounts entry \"cc\": useAsCompilationCache needs a mountPoint for backend trtllm (only vllm has a default, /root/.cache/vllm)",
            ),
            (
                "volumeMounts: [{name: cc, useAsCompilationCache: true}]",
                None,
                "volumeMounts entry \"cc\": useAsCompilationCache needs a mountPoint for backend unset (only vllm has a default, /root/.cache/vllm)",
            ),
            (
                "volumeMounts: [{name: data}]",
                Some(BackendFramework::Vllm),
                "volumeMounts entry \"data\" has no mountPoint",
            ),
        ];
        for (yaml, backend, message) in cases {
            assert_eq!(
                build(yaml, backend).unwrap_err().to_string(),
                message,
                "{yaml}"
            );
        }
    }
}
