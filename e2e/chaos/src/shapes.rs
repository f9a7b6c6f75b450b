//! The graphs of a chaos run: four shapes taken in turn, their manifests, and the children each
//! must own once converged.

use dynamo_operator::desired::naming::{component_name, discovery_service_account};
use serde_json::{Value, json};

/// What a graph looks like; graph `i` has shape `i % 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A frontend and one worker.
    Aggregated,
    /// A frontend, a prefill and a decode worker.
    Disaggregated,
    /// A frontend, a worker and a planner.
    Planner,
    /// A frontend and a worker whose replicas a scaling adapter owns.
    Adapter,
}

pub const FRONTEND: &str = "Frontend";
pub const DECODE: &str = "VllmDecodeWorker";
pub const PREFILL: &str = "VllmPrefillWorker";
pub const PLANNER: &str = "Planner";

const IMAGE: &str = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0";

impl Shape {
    pub fn of(index: usize) -> Shape {
        [
            Shape::Aggregated,
            Shape::Disaggregated,
            Shape::Planner,
            Shape::Adapter,
        ][index % 4]
    }

    pub fn name(self) -> &'static str {
        match self {
            Shape::Aggregated => "aggregated",
            Shape::Disaggregated => "disaggregated",
            Shape::Planner => "planner",
            Shape::Adapter => "adapter",
        }
    }

    /// The graph's services.
    pub fn services(self) -> &'static [&'static str] {
        match self {
            Shape::Aggregated | Shape::Adapter => &[FRONTEND, DECODE],
            Shape::Disaggregated => &[FRONTEND, PREFILL, DECODE],
            Shape::Planner => &[FRONTEND, DECODE, PLANNER],
        }
    }

    /// The services a user scales on the graph itself (an adapter's service is scaled through
    /// the adapter: the graph's count is the adapter's to write).
    pub fn scalable(self) -> &'static [&'static str] {
        match self {
            Shape::Aggregated | Shape::Planner => &[DECODE],
            Shape::Disaggregated => &[PREFILL, DECODE],
            Shape::Adapter => &[],
        }
    }

    /// The service with a scaling adapter.
    pub fn adapted(self) -> Option<&'static str> {
        (self == Shape::Adapter).then_some(DECODE)
    }
}

/// The graph as a user applies it.
pub fn manifest(name: &str, namespace: &str, shape: Shape) -> Value {
    let worker = |sub: Option<&str>, args: &[&str]| {
        let mut service = json!({
            "componentType": "worker",
            "replicas": 1,
            "extraPodSpec": {"mainContainer": {
                "image": IMAGE,
                "command": ["python3", "-m", "dynamo.vllm"],
                "args": args,
            }},
        });
        if let Some(sub) = sub {
            service["subComponentType"] = json!(sub);
        }
        service
    };
    let mut services = serde_json::Map::new();
    services.insert(
        FRONTEND.into(),
        json!({
            "componentType": "frontend",
            "replicas": 1,
            "extraPodSpec": {"mainContainer": {"image": IMAGE}},
        }),
    );
    match shape {
        Shape::Aggregated | Shape::Planner | Shape::Adapter => {
            services.insert(DECODE.into(), worker(None, &["--model", "Qwen/Qwen3-0.6B"]));
        }
        Shape::Disaggregated => {
            services.insert(
                PREFILL.into(),
                worker(
                    Some("prefill"),
                    &["--model", "Qwen/Qwen3-0.6B", "--is-prefill-worker"],
                ),
            );
            services.insert(
                DECODE.into(),
                worker(Some("decode"), &["--model", "Qwen/Qwen3-0.6B"]),
            );
        }
    }
    if shape == Shape::Planner {
        services.insert(
            PLANNER.into(),
            json!({
                "componentType": "planner",
                "replicas": 1,
                "extraPodSpec": {"mainContainer": {
                    "image": IMAGE,
                    "command": ["python3", "-m", "planner_sla"],
                    "args": ["--environment=kubernetes", "--backend=vllm"],
                }},
            }),
        );
    }
    if shape == Shape::Adapter {
        services[DECODE]["scalingAdapter"] = json!({"enabled": true});
    }
    json!({
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backendFramework": "vllm", "services": services},
    })
}

/// A child a converged graph owns: its kind, its name, and the kind and name of its
/// controlling owner (the graph, or one of its components).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child {
    pub kind: &'static str,
    pub name: String,
    pub owner_kind: &'static str,
    pub owner: String,
}

pub const GRAPH: &str = "DynamoGraphDeployment";
pub const COMPONENT: &str = "DynamoComponentDeployment";
pub const ADAPTER: &str = "DynamoGraphDeploymentScalingAdapter";

/// Every child the operator makes for `graph` (discovery backend `kubernetes`, the chart's
/// default): a component per service with its Deployment and Service, the scaling adapter, and
/// the discovery ServiceAccount, Role and RoleBinding.
pub fn expected_children(graph: &str, shape: Shape) -> Vec<Child> {
    let of_graph = |kind, name: String| Child {
        kind,
        name,
        owner_kind: GRAPH,
        owner: graph.to_owned(),
    };
    let mut children = Vec::new();
    for service in shape.services() {
        let component = component_name(graph, service);
        children.push(of_graph(COMPONENT, component.clone()));
        for kind in ["Deployment", "Service"] {
            children.push(Child {
                kind,
                name: component.clone(),
                owner_kind: COMPONENT,
                owner: component.clone(),
            });
        }
    }
    if let Some(service) = shape.adapted() {
        children.push(of_graph(ADAPTER, component_name(graph, service)));
    }
    let account = discovery_service_account(graph);
    children.push(of_graph("ServiceAccount", account.clone()));
    children.push(of_graph("Role", format!("{account}-role")));
    children.push(of_graph("RoleBinding", format!("{account}-binding")));
    children.sort();
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_take_turns() {
        let shapes: Vec<Shape> = (0..5).map(Shape::of).collect();
        assert_eq!(
            shapes,
            [
                Shape::Aggregated,
                Shape::Disaggregated,
                Shape::Planner,
                Shape::Adapter,
                Shape::Aggregated
            ]
        );
    }

    #[test]
    fn manifests_carry_the_shape() {
        let planner = manifest("g2", "ns", Shape::Planner);
        assert_eq!(
            planner["spec"]["services"][PLANNER]["componentType"],
            "planner"
        );
        let adapter = manifest("g3", "ns", Shape::Adapter);
        assert_eq!(
            adapter["spec"]["services"][DECODE]["scalingAdapter"]["enabled"],
            true
        );
        let disagg = manifest("g1", "ns", Shape::Disaggregated);
        assert_eq!(
            disagg["spec"]["services"][PREFILL]["subComponentType"],
            "prefill"
        );
        assert_eq!(disagg["metadata"]["namespace"], "ns");
    }

    #[test]
    fn children_per_shape() {
        let count = |shape| expected_children("g", shape).len();
        // 3 per service (component, Deployment, Service) + 3 discovery RBAC (+ 1 adapter).
        assert_eq!(count(Shape::Aggregated), 9);
        assert_eq!(count(Shape::Disaggregated), 12);
        assert_eq!(count(Shape::Planner), 12);
        assert_eq!(count(Shape::Adapter), 10);
        let children = expected_children("g7", Shape::Adapter);
        assert!(children.contains(&Child {
            kind: "Deployment",
            name: "g7-vllmdecodeworker".into(),
            owner_kind: COMPONENT,
            owner: "g7-vllmdecodeworker".into(),
        }));
        assert!(children.contains(&Child {
            kind: ADAPTER,
            name: "g7-vllmdecodeworker".into(),
            owner_kind: GRAPH,
            owner: "g7".into(),
        }));
    }
}
