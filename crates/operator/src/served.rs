//! Which optional APIs the cluster serves, asked once at start (as upstream does): the
//! multinode orchestrators and the gang schedulers a graph's pods may use.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::desired::config::ServedApis;
use crate::kinds::{
    LeaderWorkerSet, PodClique, PodCliqueScalingGroup, PodCliqueSet, PodGroup, Queue,
};

/// API groups (and the version the operator speaks) it looks for.
pub const LEADER_WORKER_SET: (&str, &str) = ("leaderworkerset.x-k8s.io", "v1");
pub const VOLCANO: (&str, &str) = ("scheduling.volcano.sh", "v1beta1");
pub const GROVE: (&str, &str) = ("grove.io", "v1alpha1");
pub const KAI: (&str, &str) = ("scheduling.run.ai", "v2");

/// How often discovery is tried before the operator gives up (and restarts): a wrong answer
/// would fail every multinode graph, so a transient error is retried, never guessed past.
const ATTEMPTS: u32 = 5;

/// The optional APIs `client`'s cluster serves and the operator may use in its scope
/// (`namespace`, or every namespace): an API it may not list counts as absent, with a warning,
/// so a Role that predates it costs its feature, not every graph (a watch it may not list
/// would keep the caches from ever syncing).
pub async fn detect(client: &Client, namespace: Option<&str>) -> anyhow::Result<ServedApis> {
    let mut served = served_by_cluster(client).await?;
    if served.leader_worker_set && !may_list::<LeaderWorkerSet>(client, namespace).await? {
        tracing::warn!(
            "LeaderWorkerSet is installed, but the operator may not list leaderworkersets here: multinode graphs fail until its role allows it"
        );
        served.leader_worker_set = false;
    }
    if served.volcano && !may_list::<PodGroup>(client, namespace).await? {
        tracing::warn!(
            "Volcano is installed, but the operator may not list podgroups here: multinode groups get no PodGroup"
        );
        served.volcano = false;
    }
    if served.grove {
        // The graph controller watches all three kinds: one it may not list would keep the
        // caches from syncing.
        let listable = may_list::<PodCliqueSet>(client, namespace).await?
            && may_list::<PodClique>(client, namespace).await?
            && may_list::<PodCliqueScalingGroup>(client, namespace).await?;
        if !listable {
            tracing::warn!(
                "Grove is installed, but the operator may not list podcliquesets, podcliques and podcliquescalinggroups here: graphs run without Grove until its role allows it"
            );
            served.grove = false;
        }
    }
    if served.kai {
        let readable = match namespace {
            // Queues are cluster-scoped, and a namespace-restricted operator's rights are a
            // Role, which cannot grant them: the chart gives none, so KAI is left out.
            Some(_) => false,
            None => may_list_cluster::<Queue>(client).await?,
        };
        if !readable {
            tracing::warn!(
                restricted = namespace.is_some(),
                "KAI is installed, but the operator may not read its cluster-scoped queues: Grove pods are scheduled without KAI"
            );
            served.kai = false;
        }
    }
    tracing::info!(
        leader_worker_set = served.leader_worker_set,
        volcano = served.volcano,
        grove = served.grove,
        kai = served.kai,
        "optional APIs"
    );
    Ok(served)
}

/// Whether a list of cluster-scoped `K` is allowed (one object at most is read).
async fn may_list_cluster<K>(client: &Client) -> anyhow::Result<bool>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    listable(api.list_metadata(&ListParams::default().limit(1)).await)
}

/// A list's answer as "allowed": a refusal (403) is a no, any other error an error.
fn listable<T>(answer: kube::Result<T>) -> anyhow::Result<bool> {
    match answer {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(false),
        Err(e) => Err(e).context("checking access to an optional API"),
    }
}

/// Whether a list of `K` in the scope is allowed (one object at most is read).
async fn may_list<K>(client: &Client, namespace: Option<&str>) -> anyhow::Result<bool>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    listable(api.list_metadata(&ListParams::default().limit(1)).await)
}

/// The optional APIs the cluster serves.
async fn served_by_cluster(client: &Client) -> anyhow::Result<ServedApis> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    let groups = loop {
        match client.list_api_groups().await {
            Ok(groups) => break groups,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!("API discovery failed (attempt {attempt} of {ATTEMPTS}): {e}");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e).context("listing the API groups the cluster serves"),
        }
    };
    Ok(served_apis(&groups))
}

/// What a discovery answer says is served.
pub fn served_apis(groups: &APIGroupList) -> ServedApis {
    let serves = |(group, version): (&str, &str)| {
        groups
            .groups
            .iter()
            .filter(|g| g.name == group)
            .any(|g| g.versions.iter().any(|v| v.version == version))
    };
    ServedApis {
        leader_worker_set: serves(LEADER_WORKER_SET),
        volcano: serves(VOLCANO),
        grove: serves(GROVE),
        kai: serves(KAI),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, GroupVersionForDiscovery};

    fn group(name: &str, versions: &[&str]) -> APIGroup {
        APIGroup {
            name: name.to_owned(),
            versions: versions
                .iter()
                .map(|v| GroupVersionForDiscovery {
                    group_version: format!("{name}/{v}"),
                    version: (*v).to_owned(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn an_api_counts_only_in_the_version_the_operator_speaks() {
        let served = |lws, volcano, grove, kai| ServedApis {
            leader_worker_set: lws,
            volcano,
            grove,
            kai,
        };
        let cases = [
            (vec![], ServedApis::default()),
            (
                vec![group("leaderworkerset.x-k8s.io", &["v1"])],
                served(true, false, false, false),
            ),
            (
                vec![
                    group("leaderworkerset.x-k8s.io", &["v1alpha1"]),
                    group("scheduling.volcano.sh", &["v1beta1"]),
                    group("apps", &["v1"]),
                ],
                served(false, true, false, false),
            ),
            (
                vec![
                    group("grove.io", &["v1alpha1"]),
                    group("scheduling.run.ai", &["v1", "v2"]),
                ],
                served(false, false, true, true),
            ),
            (
                // Another Grove or KAI API version is not the one the operator speaks.
                vec![
                    group("grove.io", &["v1beta1"]),
                    group("scheduling.run.ai", &["v2alpha2"]),
                ],
                served(false, false, false, false),
            ),
            (
                vec![
                    group("leaderworkerset.x-k8s.io", &["v1"]),
                    group("scheduling.volcano.sh", &["v1beta1"]),
                    group("grove.io", &["v1alpha1"]),
                    group("scheduling.run.ai", &["v2"]),
                ],
                served(true, true, true, true),
            ),
        ];
        for (groups, expected) in cases {
            let list = APIGroupList {
                groups: groups.clone(),
            };
            assert_eq!(served_apis(&list), expected, "{groups:?}");
        }
    }

    #[test]
    fn only_a_refused_list_counts_as_not_allowed() {
        let status = |code| {
            kube::Error::Api(
                kube::core::Status::failure("refused", "Forbidden")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(listable(Ok(())).unwrap());
        assert!(!listable::<()>(Err(status(403))).unwrap());
        assert!(listable::<()>(Err(status(404))).is_err());
        assert!(listable::<()>(Err(status(500))).is_err());
    }
}
