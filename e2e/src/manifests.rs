//! Manifests as a user writes them: the committed examples, and graphs built up service by
//! service into indented YAML (not typed objects: invalid ones must be expressible too).
//!
//! `graph("agg").backend("vllm").service("Worker", "componentType: worker\nreplicas: 2")`
//! renders as the YAML a user would write, one field per line.

use std::fmt::Write as _;

use crate::Cluster;

/// `examples/<file>` of the repository.
pub fn example(file: &str) -> String {
    let path = Cluster::get().repo.join("examples").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A DynamoGraphDeployment named `name`, with nothing in its spec yet.
pub fn graph(name: &str) -> Graph {
    Graph {
        name: name.to_owned(),
        backend: None,
        spec: Vec::new(),
        services: None,
    }
}

/// A DynamoGraphDeployment manifest being written; [`Graph::yaml`] renders it.
#[derive(Clone, Debug)]
pub struct Graph {
    name: String,
    backend: Option<String>,
    /// Other spec fields, as YAML blocks.
    spec: Vec<String>,
    /// `None`: no `services` key at all; `Some(empty)`: `services: {}`.
    services: Option<Vec<(String, String)>>,
}

impl Graph {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `spec.backendFramework`.
    pub fn backend(mut self, backend: &str) -> Self {
        self.backend = Some(backend.to_owned());
        self
    }

    /// A service whose fields are `fields` (YAML, indentation of its own; it is re-indented).
    pub fn service(mut self, name: &str, fields: &str) -> Self {
        self.services
            .get_or_insert_with(Vec::new)
            .push((name.to_owned(), dedent(fields)));
        self
    }

    /// `services: {}`.
    pub fn no_services(mut self) -> Self {
        self.services.get_or_insert_with(Vec::new);
        self
    }

    /// Other fields of the spec, such as `pvcs` (YAML, re-indented).
    pub fn spec(mut self, fields: &str) -> Self {
        self.spec.push(dedent(fields));
        self
    }

    pub fn yaml(&self) -> String {
        let mut yaml = format!(
            "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: {}\nspec:\n",
            self.name
        );
        if let Some(backend) = &self.backend {
            writeln!(yaml, "  backendFramework: {backend}").unwrap();
        }
        for fields in &self.spec {
            yaml.push_str(&indent(fields, 2));
        }
        match &self.services {
            None => {}
            Some(services) if services.is_empty() => yaml.push_str("  services: {}\n"),
            Some(services) => {
                yaml.push_str("  services:\n");
                for (name, fields) in services {
                    writeln!(yaml, "    {name}:").unwrap();
                    yaml.push_str(&indent(fields, 6));
                }
            }
        }
        yaml
    }
}

/// `text` without its blank first and last lines and without the indentation all its lines
/// share, so a raw string can be indented like the code around it.
fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.lines().skip_while(|l| l.trim().is_empty()).collect();
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let lines = &lines[..end];
    let shared = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| format!("{}\n", l.get(shared..).unwrap_or("")))
        .collect()
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("{:by$}{l}\n", "")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_renders_as_indented_yaml() {
        let yaml = graph("agg")
            .backend("vllm")
            .spec(
                "
                pvcs:
                  - name: cache
                    create: true
                ",
            )
            .service("Frontend", "componentType: frontend")
            .service(
                "W",
                "
                multinode:
                  nodeCount: 1
                ",
            )
            .yaml();
        assert_eq!(
            yaml,
            "apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: agg
spec:
  backendFramework: vllm
  pvcs:
    - name: cache
      create: true
  services:
    Frontend:
      componentType: frontend
    W:
      multinode:
        nodeCount: 1
"
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["spec"]["services"]["W"]["multinode"]["nodeCount"], 1);
    }

    #[test]
    fn services_are_absent_or_empty_as_asked() {
        assert!(!graph("g").yaml().contains("services"));
        assert!(
            graph("g")
                .no_services()
                .yaml()
                .ends_with("  services: {}\n")
        );
    }
}
