//! The graph's top-level `pvcs`: which claims to create, and a clear message for one that is
//! missing and not the graph's to create.

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::DynamoGraphDeployment;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use kube::ResourceExt;
use kube::api::ObjectMeta;

use super::{BuildError, controller_ref, namespace_of};

/// What to do about the graph's claims, given which of them exist (`exists(name)`).
#[derive(Debug, PartialEq)]
pub enum ClaimPlan {
    /// Create these (in order); every other claim exists.
    Create(Vec<PersistentVolumeClaim>),
    /// A claim is missing and `create` is not true: the graph cannot run.
    Missing(String),
}

/// The claims of `graph` to create: those with `create: true` that do not exist, owned by the
/// graph and labelled with its name. The first missing claim without `create: true` wins.
pub fn claim_plan(
    graph: &DynamoGraphDeployment,
    exists: impl Fn(&str) -> bool,
) -> Result<ClaimPlan, BuildError> {
    let mut create = Vec::new();
    for (index, pvc) in graph.spec.pvcs.iter().flatten().enumerate() {
        if exists(&pvc.name) {
            continue;
        }
        if pvc.create != Some(true) {
            return Ok(ClaimPlan::Missing(format!(
                "spec.pvcs[{index}]: PersistentVolumeClaim {} not found and create is not true",
                pvc.name
            )));
        }
        create.push(PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(pvc.name.clone()),
                namespace: Some(namespace_of(graph)?),
                labels: Some([(label::GRAPH_DEPLOYMENT_NAME.to_owned(), graph.name_any())].into()),
                owner_references: Some(vec![controller_ref(graph)?]),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: pvc.volume_access_mode.clone().map(|m| vec![m]),
                storage_class_name: pvc.storage_class.clone(),
                resources: pvc.size.clone().map(|size| VolumeResourceRequirements {
                    requests: Some([("storage".to_owned(), size)].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Ok(ClaimPlan::Create(create))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::testing::graph;

    const PVCS: &str = "
metadata: {name: g}
spec:
  services: {Frontend: {componentType: frontend}}
  pvcs:
    - {name: models, create: true, size: 10Gi, storageClass: fast, volumeAccessMode: ReadWriteMany}
    - {name: shared}
";

    #[test]
    fn claims_are_created_only_when_missing_and_allowed() {
        struct Case {
            name: &'static str,
            existing: &'static [&'static str],
            expected: Result<Vec<&'static str>, &'static str>,
        }
        let cases = [
            Case {
                name: "both exist",
                existing: &["models", "shared"],
                expected: Ok(vec![]),
            },
            Case {
                name: "the created one is missing",
                existing: &["shared"],
                expected: Ok(vec!["models"]),
            },
            Case {
                name: "a claim the graph does not create is missing",
                existing: &["models"],
                expected: Err(
                    "spec.pvcs[1]: PersistentVolumeClaim shared not found and create is not true",
                ),
            },
        ];
        let dgd = graph(PVCS);
        for case in cases {
            let plan = claim_plan(&dgd, |name| case.existing.contains(&name)).unwrap();
            match (plan, case.expected) {
                (ClaimPlan::Create(claims), Ok(names)) => {
                    let created: Vec<String> = claims.iter().map(|c| c.name_any()).collect();
                    assert_eq!(created, names, "{}", case.name);
                }
                (ClaimPlan::Missing(message), Err(expected)) => {
                    assert_eq!(message, expected, "{}", case.name)
                }
                (plan, expected) => panic!("{}: {plan:?}, expected {expected:?}", case.name),
            }
        }
    }

    #[test]
    fn a_created_claim_is_owned_labelled_and_sized() {
        let ClaimPlan::Create(claims) = claim_plan(&graph(PVCS), |n| n == "shared").unwrap() else {
            panic!("expected claims to create");
        };
        let claim = &claims[0];
        assert_eq!(claim.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(claim.labels()[label::GRAPH_DEPLOYMENT_NAME], "g");
        let owner = &claim.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("DynamoGraphDeployment", Some(true))
        );
        let spec = claim.spec.as_ref().unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.access_modes.as_deref(),
            Some(&["ReadWriteMany".to_owned()][..])
        );
        let size = &spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"];
        assert_eq!(size.0, "10Gi");
    }
}
