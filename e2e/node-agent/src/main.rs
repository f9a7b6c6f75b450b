//! dynamo node agent: runs the pods of our own images on the local control plane's kwok node
//! as real processes (see the `dynamo_node_agent` library). Started by `hack/cluster.sh up`
//! when built.
//!
//! Environment: KUBECONFIG (admin), DYNAMO_E2E_NODE, DYNAMO_E2E_STATE, DYNAMO_AGENT_BINARIES
//! (where dynamo-operator, dynamo-webhook and dynamo-certgen are), DYNAMO_AGENT_API_HOST and
//! DYNAMO_AGENT_API_PORT (the API server as pods reach it); optional DYNAMO_AGENT_RUNTIME (the
//! directory hack/dynamo-runtime.sh prints: Dynamo runtime pods are then run for real).

use anyhow::Context as _;
use dynamo_node_agent::runtime::Runtime;
use dynamo_node_agent::{Agent, Config, network};

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dynamo_common::init_logging();
    let api_host = var("DYNAMO_AGENT_API_HOST")?;
    // Pods reach each other through the cluster's namespace, as through a node's bridge.
    network::enable_forwarding()?;
    let runtime = std::env::var_os("DYNAMO_AGENT_RUNTIME")
        .filter(|r| !r.is_empty())
        .map(|root| Runtime { root: root.into() });
    let config = Config {
        client: kube::Client::try_default()
            .await
            .context("connecting to the API server")?,
        node: var("DYNAMO_E2E_NODE")?,
        state: var("DYNAMO_E2E_STATE")?.into(),
        binaries: var("DYNAMO_AGENT_BINARIES")?.into(),
        api_port: var("DYNAMO_AGENT_API_PORT")?
            .parse()
            .context("DYNAMO_AGENT_API_PORT")?,
        // The API server is advertised on the node IP.
        host_ip: api_host.clone(),
        api_host,
        runtime,
    };
    Agent::new(config)
        .run(dynamo_common::shutdown_signal())
        .await
}
