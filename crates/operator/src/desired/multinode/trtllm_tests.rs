//! Upstream's `backend_trtllm_test.go` cases, with the differences of this port asserted.

use super::super::tests::{
    GROVE, LWS, LWS_ENV, container, gpus, kubelet_expand, multinode, with_probes,
};
use super::super::{Deployer, Multinode, Role};
use super::*;
use k8s_openapi::api::core::v1::PodSpec;

/// TestTRTLLMBackend_UpdateContainer, Grove leader: three nodes, requests.gpu 2, args `python3 --model test`.
const UPDATE_CONTAINER_GROVE_LEADER: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 6 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-wkr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-wkr-1.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x OMPI_MCA_orte_keep_fqdn_hostnames -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch python3 --model test'"##;
/// TestTRTLLMBackend_UpdateContainer and _setupWorkerContainer: every worker, whatever the deployer.
const WORKER: &str = r##"mkdir -p ~/.ssh ~/.ssh/host_keys ~/.ssh/run && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && ssh-keygen -t rsa -f ~/.ssh/host_keys/ssh_host_rsa_key -N '' && ssh-keygen -t ecdsa -f ~/.ssh/host_keys/ssh_host_ecdsa_key -N '' && ssh-keygen -t ed25519 -f ~/.ssh/host_keys/ssh_host_ed25519_key -N '' && printf 'Port 2222\nHostKey ~/.ssh/host_keys/ssh_host_rsa_key\nHostKey ~/.ssh/host_keys/ssh_host_ecdsa_key\nHostKey ~/.ssh/host_keys/ssh_host_ed25519_key\nPidFile ~/.ssh/run/sshd.pid\nPermitRootLogin yes\nPasswordAuthentication no\nPubkeyAuthentication yes\nAuthorizedKeysFile ~/.ssh/authorized_keys\n' > ~/.ssh/sshd_config && /usr/sbin/sshd -D -f ~/.ssh/sshd_config"##;
/// TestTRTLLMBackend_UpdateContainer, LWS leader: two nodes, limits.gpu 1; `-H` starts with the kubelet reference `$(LWS_LEADER_ADDRESS)` (difference 1; upstream `$LWS_LEADER_ADDRESS`).
const UPDATE_CONTAINER_LWS_LEADER: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && TIMEOUT=300; START_TIME=$(date +%s); for worker in $(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-1\./'); do echo "Waiting for DNS: $worker"; until getent hosts $worker >/dev/null 2>&1; do CURRENT_TIME=$(date +%s); if [ $((CURRENT_TIME - START_TIME)) -gt $TIMEOUT ]; then echo "ERROR: Timeout waiting for DNS: $worker"; exit 1; fi; echo "DNS not ready for $worker, retrying..."; sleep 2; done; echo "✓ DNS resolved: $worker"; done; echo "All workers DNS ready" && mpirun --allow-run-as-root --oversubscribe -n 2 -H $(LWS_LEADER_ADDRESS),$(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-1\./') --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x OMPI_MCA_orte_keep_fqdn_hostnames -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch python3 --model test'"##;
/// TestTRTLLMBackend_setupLeaderContainer: Grove, three nodes, `test-service`, requests.gpu 2, args `python3 --model test`.
const SETUP_LEADER_1: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 6 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-wkr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-wkr-1.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch python3 --model test'"##;
/// TestTRTLLMBackend_setupLeaderContainer: LWS, two nodes, no resources (`-n 0`), command `python -m worker`; `-H` with the kubelet reference (difference 1).
const SETUP_LEADER_2: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && TIMEOUT=300; START_TIME=$(date +%s); for worker in $(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-1\./'); do echo "Waiting for DNS: $worker"; until getent hosts $worker >/dev/null 2>&1; do CURRENT_TIME=$(date +%s); if [ $((CURRENT_TIME - START_TIME)) -gt $TIMEOUT ]; then echo "ERROR: Timeout waiting for DNS: $worker"; exit 1; fi; echo "DNS not ready for $worker, retrying..."; sleep 2; done; echo "✓ DNS resolved: $worker"; done; echo "All workers DNS ready" && mpirun --allow-run-as-root --oversubscribe -n 0 -H $(LWS_LEADER_ADDRESS),$(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-1\./') --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch python -m worker'"##;
/// TestTRTLLMBackend_setupLeaderContainer: Grove, two nodes, `test`, limits.gpu 1, `sh -c` with args `launch --config test.yaml`.
const SETUP_LEADER_3: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 2 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-wkr-0.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch launch --config test.yaml'"##;
/// TestTRTLLMBackend_setupLeaderContainer: Grove, two nodes, `test`, command `python3`, args `-m dynamo.trtllm --model-path test`.
const SETUP_LEADER_4: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 2 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-wkr-0.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch python3 -m dynamo.trtllm --model-path test'"##;
/// TestTRTLLMBackend_setupLeaderContainer: Grove, two nodes, `test`, command `python3 -m dynamo.trtllm`, Qwen prefill args.
const SETUP_LEADER_5: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 2 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-wkr-0.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch python3 -m dynamo.trtllm --model-path Qwen/Qwen3-0.6B --served-model-name Qwen/Qwen3-0.6B --disaggregation-mode prefill'"##;
/// TestTRTLLMBackend_setupLeaderContainer: Grove, two nodes, `test`, command `/usr/bin/python3.8`.
const SETUP_LEADER_6: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 2 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-wkr-0.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch /usr/bin/python3.8 -m dynamo.trtllm --model-path test'"##;
/// TestTRTLLMBackend_setupLeaderContainer: Grove, two nodes, `test`, requests.gpu 1, args `serve --model test`: all variables forwarded.
const SETUP_LEADER_7: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 2 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-wkr-0.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch serve --model test'"##;
/// TestTRTLLMBackend_setupLeaderContainer: Same with container env CUDA_VISIBLE_DEVICES, CUSTOM_VAR, PATH: deduplicated and sorted.
const SETUP_LEADER_8: &str = r##"mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa && cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub && cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys && chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys && chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys && printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config && mpirun --allow-run-as-root --oversubscribe -n 2 -H $(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-ldr-0.$(GROVE_HEADLESS_SERVICE),$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-wkr-0.$(GROVE_HEADLESS_SERVICE) --mca pml ob1 --mca plm_rsh_args "-p 2222 -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa" -x CUDA_VISIBLE_DEVICES -x CUSTOM_VAR -x HF_DATASETS_CACHE -x HF_ENDPOINT -x HF_HOME -x HF_TOKEN -x HOME -x HUGGING_FACE_HUB_TOKEN -x LD_LIBRARY_PATH -x MODEL_PATH -x NCCL_DEBUG -x NCCL_IB_DISABLE -x NCCL_P2P_DISABLE -x PATH -x PYTHONPATH -x TENSORRT_LLM_CACHE_DIR -x TOKENIZERS_PARALLELISM -x TRANSFORMERS_CACHE -x TRTLLM_USE_UCX_KVCACHE -x USER bash -c 'trtllm-llmapi-launch serve --model test'"##;

const SH_C: [&str; 2] = ["/bin/sh", "-c"];

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

/// A pod whose main container has `args` (no command) and all three probes.
fn pod_with(args: &[&str]) -> PodSpec {
    PodSpec {
        containers: vec![with_probes(container(&[], args))],
        ..Default::default()
    }
}

fn rewritten(
    mut pod: PodSpec,
    resources: Option<&Resources>,
    multinode: &Multinode<'_>,
) -> PodSpec {
    super::super::rewrite(
        &mut pod,
        dynamo_api::v1alpha1::BackendFramework::Trtllm,
        resources,
        multinode,
    )
    .unwrap();
    pod
}

#[test]
fn update_container() {
    // TestTRTLLMBackend_UpdateContainer: args `python3 --model test`, no command, all probes.
    let requests_2 = gpus(None, Some("2"));
    let limits_1 = gpus(Some("1"), None);
    let cases = [
        (
            3,
            Role::Leader,
            GROVE,
            &requests_2,
            UPDATE_CONTAINER_GROVE_LEADER,
        ),
        (3, Role::Worker, GROVE, &requests_2, WORKER),
        (2, Role::Leader, LWS, &limits_1, UPDATE_CONTAINER_LWS_LEADER),
        (2, Role::Worker, LWS, &limits_1, WORKER),
    ];
    for (nodes, role, deployer, resources, script) in cases {
        let pod = rewritten(
            pod_with(&["python3", "--model", "test"]),
            Some(resources),
            &multinode(nodes, role, deployer),
        );
        let c = &pod.containers[0];
        assert_eq!(c.command.as_deref().unwrap(), SH_C);
        assert_eq!(
            c.args.as_deref().unwrap(),
            [script],
            "{deployer:?} {role:?}"
        );
        assert_eq!(
            c.volume_mounts.as_deref().unwrap(),
            [VolumeMount {
                name: "mpi-run-ssh-secret".to_owned(),
                mount_path: "/ssh-pk".to_owned(),
                read_only: Some(true),
                ..Default::default()
            }]
        );
        assert_eq!(
            c.env.as_deref().unwrap(),
            [env("OMPI_MCA_orte_keep_fqdn_hostnames", "1")]
        );
        match role {
            Role::Leader => {
                assert!(c.liveness_probe.is_some() && c.startup_probe.is_some());
                assert_eq!(
                    c.readiness_probe,
                    with_probes(container(&[], &[])).readiness_probe
                );
            }
            Role::Worker => {
                assert!(c.liveness_probe.is_none() && c.startup_probe.is_none());
                assert_eq!(
                    c.readiness_probe,
                    Some(Probe {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::Int(2222),
                            host: None,
                        }),
                        initial_delay_seconds: Some(20),
                        period_seconds: Some(20),
                        timeout_seconds: Some(5),
                        failure_threshold: Some(10),
                        ..Default::default()
                    })
                );
            }
        }
    }
    // Single node: nothing changes (no command, mounts, env or volumes).
    let single = pod_with(&["python3", "--model", "test"]);
    assert_eq!(
        rewritten(
            single.clone(),
            Some(&requests_2),
            &multinode(1, Role::Leader, GROVE)
        ),
        single
    );
}

#[test]
fn update_pod_spec() {
    // TestTRTLLMBackend_UpdatePodSpec: the SSH key volume on both roles of several nodes.
    let ssh_volume = Volume {
        name: "mpi-run-ssh-secret".to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("mpi-run-ssh-secret".to_owned()),
            default_mode: Some(0o644),
            ..Default::default()
        }),
        ..Default::default()
    };
    let existing = Volume {
        name: "existing".to_owned(),
        ..Default::default()
    };
    let cases = [
        (1, Role::Leader, GROVE, vec![], vec![]),
        (3, Role::Leader, GROVE, vec![], vec![ssh_volume.clone()]),
        (2, Role::Worker, LWS, vec![], vec![ssh_volume.clone()]),
        (
            3,
            Role::Leader,
            GROVE,
            vec![existing.clone()],
            vec![existing.clone(), ssh_volume.clone()],
        ),
    ];
    for (nodes, role, deployer, before, after) in cases {
        let mut pod = pod_with(&["python3"]);
        pod.volumes = Some(before).filter(|v| !v.is_empty());
        let pod = rewritten(pod, None, &multinode(nodes, role, deployer));
        assert_eq!(pod.volumes.unwrap_or_default(), after, "{nodes} {role:?}");
    }
}

#[test]
fn the_ssh_mount_comes_after_existing_mounts() {
    // TestTRTLLMBackend_addSSHVolumeMount.
    let mut pod = pod_with(&["python3"]);
    let data = VolumeMount {
        name: "data".to_owned(),
        mount_path: "/data".to_owned(),
        ..Default::default()
    };
    pod.containers[0].volume_mounts = Some(vec![data.clone()]);
    let pod = rewritten(pod, None, &multinode(2, Role::Worker, GROVE));
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    assert_eq!(mounts[0], data);
    assert_eq!(
        (
            mounts[1].name.as_str(),
            mounts[1].mount_path.as_str(),
            mounts[1].read_only
        ),
        ("mpi-run-ssh-secret", "/ssh-pk", Some(true))
    );
    assert_eq!(mounts.len(), 2);
}

#[test]
fn setup_leader_container() {
    // TestTRTLLMBackend_setupLeaderContainer: the leader script alone, so the container env
    // lacks OMPI_MCA_orte_keep_fqdn_hostnames and the `-x` list too.
    let test = Deployer::Grove { service: "test" };
    let qwen = [
        "--model-path",
        "Qwen/Qwen3-0.6B",
        "--served-model-name",
        "Qwen/Qwen3-0.6B",
        "--disaggregation-mode",
        "prefill",
    ];
    let dedup_env = vec![
        env("CUDA_VISIBLE_DEVICES", "0,1"),
        env("CUSTOM_VAR", "test_value"),
        env("PATH", "/custom/path"),
    ];
    #[allow(clippy::type_complexity)]
    let cases: [(
        Deployer,
        i32,
        Option<Resources>,
        &[&str],
        &[&str],
        Vec<EnvVar>,
        &str,
    ); 8] = [
        (
            GROVE,
            3,
            Some(gpus(None, Some("2"))),
            &[],
            &["python3", "--model", "test"],
            vec![],
            SETUP_LEADER_1,
        ),
        (
            LWS,
            2,
            None,
            &["python", "-m", "worker"],
            &[],
            vec![],
            SETUP_LEADER_2,
        ),
        (
            test,
            2,
            Some(gpus(Some("1"), None)),
            &["sh", "-c"],
            &["launch", "--config", "test.yaml"],
            vec![],
            SETUP_LEADER_3,
        ),
        (
            test,
            2,
            Some(gpus(Some("1"), None)),
            &["python3"],
            &["-m", "dynamo.trtllm", "--model-path", "test"],
            vec![],
            SETUP_LEADER_4,
        ),
        (
            test,
            2,
            Some(gpus(Some("1"), None)),
            &["python3", "-m", "dynamo.trtllm"],
            &qwen,
            vec![],
            SETUP_LEADER_5,
        ),
        (
            test,
            2,
            Some(gpus(Some("1"), None)),
            &["/usr/bin/python3.8"],
            &["-m", "dynamo.trtllm", "--model-path", "test"],
            vec![],
            SETUP_LEADER_6,
        ),
        (
            test,
            2,
            Some(gpus(None, Some("1"))),
            &[],
            &["serve", "--model", "test"],
            vec![],
            SETUP_LEADER_7,
        ),
        (
            test,
            2,
            Some(gpus(None, Some("1"))),
            &[],
            &["serve", "--model", "test"],
            dedup_env,
            SETUP_LEADER_8,
        ),
    ];
    for (deployer, nodes, resources, command, args, env, expected) in cases {
        let mut c = container(command, args);
        c.env = Some(env).filter(|e| !e.is_empty());
        let script = leader_script(
            &c,
            resources.as_ref(),
            &multinode(nodes, Role::Leader, deployer),
        );
        assert_eq!(script, expected, "{command:?} {args:?}");
    }
}

#[test]
fn setup_worker_container() {
    // TestTRTLLMBackend_setupWorkerContainer: the original command line is dropped.
    for (command, args) in [
        (&[][..], &["some", "args"][..]),
        (&["original", "command"], &[]),
    ] {
        for deployer in [GROVE, LWS] {
            let mut pod = PodSpec {
                containers: vec![container(command, args)],
                ..Default::default()
            };
            pod = rewritten(pod, None, &multinode(4, Role::Worker, deployer));
            let c = &pod.containers[0];
            assert_eq!(c.command.as_deref().unwrap(), SH_C);
            assert_eq!(c.args.as_deref().unwrap(), [WORKER]);
        }
    }
}

#[test]
fn gpus_per_node_prefer_the_request() {
    // TestTRTLLMBackend_getGPUsPerNode, plus the fallbacks of upstream's code.
    let cases = [
        (None, 0),
        (Some(gpus(None, None)), 0),
        (Some(gpus(None, Some("2"))), 2),
        (Some(gpus(Some("4"), None)), 4),
        (Some(gpus(Some("8"), Some("3"))), 3),
        (Some(gpus(None, Some("invalid"))), 0),
        (Some(gpus(None, Some(""))), 0),
        (Some(gpus(Some("4"), Some("invalid"))), 4),
        (Some(gpus(Some("4"), Some(""))), 4),
        (Some(gpus(Some("4294967296"), None)), 0),
    ];
    for (resources, count) in cases {
        assert_eq!(gpus_per_node(resources.as_ref()), count, "{resources:?}");
    }
}

#[test]
fn the_launched_command_line_is_quoted_for_bash_c() {
    // Differences 2 and 3: upstream puts the text between single quotes as it is (a `'` ends
    // the quoting) and drops a non-python exec command (`trtllm-serve`).
    let cases: [(&[&str], &[&str], &str); 3] = [
        (
            &["sh", "-c"],
            &["echo 'hi' && python3 -m dynamo.trtllm"],
            r"bash -c 'trtllm-llmapi-launch echo '\''hi'\'' && python3 -m dynamo.trtllm'",
        ),
        (
            &["python3", "-m", "dynamo.trtllm"],
            &["--extra", r#"{"a": "b c"}"#, "--name", "it's"],
            r#"bash -c 'trtllm-llmapi-launch python3 -m dynamo.trtllm --extra '\''{"a": "b c"}'\'' --name '\''it'\''\'\'''\''s'\'''"#,
        ),
        (
            &["trtllm-serve"],
            &["--model", "m"],
            "bash -c 'trtllm-llmapi-launch trtllm-serve --model m'",
        ),
    ];
    for (command, args, launch) in cases {
        let script = leader_script(
            &container(command, args),
            None,
            &multinode(2, Role::Leader, GROVE),
        );
        assert!(script.ends_with(launch), "{script}");
    }
}

#[test]
fn lws_host_names_reach_the_shell_expanded_or_as_commands() {
    // Difference 1: after the kubelet, the leader is a literal address and the workers' `sed`
    // substitutions are left for the shell.
    let script = kubelet_expand(UPDATE_CONTAINER_LWS_LEADER, &LWS_ENV);
    assert!(script.contains(r#" -H g-0.g.ns,$(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-1\./') "#));
    assert!(
        script.contains(r#"for worker in $(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-1\./'); do"#)
    );
    assert!(!script.contains("$(LWS_"));
}

#[test]
fn existing_ssh_volume_mount_and_env_are_not_duplicated() {
    // Difference 6: upstream appends duplicates, which the API server refuses (volume names,
    // mount paths) or server-side apply refuses (env names).
    let mut pod = pod_with(&["python3"]);
    let user_volume = Volume {
        name: "mpi-run-ssh-secret".to_owned(),
        ..Default::default()
    };
    let user_mount = VolumeMount {
        name: "my-keys".to_owned(),
        mount_path: "/ssh-pk".to_owned(),
        ..Default::default()
    };
    pod.volumes = Some(vec![user_volume.clone()]);
    pod.containers[0].volume_mounts = Some(vec![user_mount.clone()]);
    pod.containers[0].env = Some(vec![
        env("OMPI_MCA_orte_keep_fqdn_hostnames", "0"),
        env("A", "1"),
    ]);
    let pod = rewritten(pod, None, &multinode(2, Role::Leader, GROVE));
    let c = &pod.containers[0];
    assert_eq!(pod.volumes.unwrap(), [user_volume]);
    assert_eq!(c.volume_mounts.as_deref().unwrap(), [user_mount]);
    // Upstream's appended value wins at the kubelet: `1`.
    assert_eq!(
        c.env.as_deref().unwrap(),
        [env("OMPI_MCA_orte_keep_fqdn_hostnames", "1"), env("A", "1")]
    );
}

#[test]
fn env_appended_after_the_sorted_env_and_forwarded() {
    let mut pod = pod_with(&["python3"]);
    pod.containers[0].env = Some(vec![env("A_VAR", "1"), env("ZED", "2")]);
    let pod = rewritten(pod, None, &multinode(2, Role::Leader, GROVE));
    let c = &pod.containers[0];
    let names: Vec<&str> = c.env.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["A_VAR", "ZED", "OMPI_MCA_orte_keep_fqdn_hostnames"]);
    let script = &c.args.as_deref().unwrap()[0];
    assert!(
        script.contains(" -x A_VAR -x CUDA_VISIBLE_DEVICES "),
        "{script}"
    );
    assert!(script.contains(" -x NCCL_P2P_DISABLE -x OMPI_MCA_orte_keep_fqdn_hostnames -x PATH "));
    assert!(script.contains(" -x USER -x ZED bash -c "));
}
