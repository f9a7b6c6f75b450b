//! Which optional APIs the cluster serves, asked once at start (as upstream does): the
//! multinode orchestrators and the gang schedulers a graph's pods may use.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList;
use kube::Client;

use crate::desired::config::ServedApis;

/// API groups (and the version the operator speaks) it looks for.
pub const LEADER_WORKER_SET: (&str, &str) = ("leaderworkerset.x-k8s.io", "v1");
pub const VOLCANO: (&str, &str) = ("scheduling.volcano.sh", "v1beta1");

/// How often discovery is tried before the operator gives up (and restarts): a wrong answer
/// would fail every multinode graph, so a transient error is retried, never guessed past.
const ATTEMPTS: u32 = 5;

/// The optional APIs `client`'s cluster serves.
pub async fn detect(client: &Client) -> anyhow::Result<ServedApis> {
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
    let served = served_apis(&groups);
    tracing::info!(
        leader_worker_set = served.leader_worker_set,
        volcano = served.volcano,
        "optional APIs"
    );
    Ok(served)
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
        let cases = [
            (vec![], ServedApis::default()),
            (
                vec![group("leaderworkerset.x-k8s.io", &["v1"])],
                ServedApis {
                    leader_worker_set: true,
                    volcano: false,
                },
            ),
            (
                vec![
                    group("leaderworkerset.x-k8s.io", &["v1alpha1"]),
                    group("scheduling.volcano.sh", &["v1beta1"]),
                    group("apps", &["v1"]),
                ],
                ServedApis {
                    leader_worker_set: false,
                    volcano: true,
                },
            ),
        ];
        for (groups, expected) in cases {
            let list = APIGroupList {
                groups: groups.clone(),
            };
            assert_eq!(served_apis(&list), expected, "{groups:?}");
        }
    }
}
