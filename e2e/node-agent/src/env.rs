//! A container's environment as the kubelet builds it: `envFrom` sources first, then `env`
//! (a later name wins), values from Secrets, ConfigMaps and the downward API, and `$(VAR)`
//! references expanded in `env` values, `command` and `args`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use kube::{Api, Client};

/// Why a container cannot start yet (the kubelet's CreateContainerConfigError).
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

/// Expands `$(NAME)` with the value of `NAME` when defined; `$$` is a literal `$`; anything
/// else is left as written (the kubelet's rules).
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => out.push_str(&rest[at..at + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The downward-API value of `field_path`, when the agent knows it.
fn field(pod: &Pod, pod_ip: &str, host_ip: &str, field_path: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    let quoted = |prefix: &str| {
        field_path
            .strip_prefix(prefix)?
            .strip_suffix("']")
            .map(str::to_owned)
    };
    if let Some(key) = quoted("metadata.labels['") {
        return pod.metadata.labels.as_ref()?.get(&key).cloned();
    }
    if let Some(key) = quoted("metadata.annotations['") {
        return pod.metadata.annotations.as_ref()?.get(&key).cloned();
    }
    Some(match field_path {
        "metadata.name" => pod.metadata.name.clone()?,
        "metadata.namespace" => pod.metadata.namespace.clone()?,
        "metadata.uid" => pod.metadata.uid.clone()?,
        "spec.nodeName" => spec?.node_name.clone()?,
        "spec.serviceAccountName" => spec?.service_account_name.clone()?,
        "status.podIP" => pod_ip.to_owned(),
        "status.hostIP" => host_ip.to_owned(),
        _ => return None,
    })
}

async fn secret(client: &Client, ns: &str, name: &str) -> kube::Result<Option<Secret>> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
}

async fn config_map(client: &Client, ns: &str, name: &str) -> kube::Result<Option<ConfigMap>> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
}

fn secret_strings(secret: Secret) -> BTreeMap<String, String> {
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The variables of `container`, in order, with every source read from the API server.
pub async fn resolve(
    client: &Client,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api_error = |what: String, e: kube::Error| ConfigError(format!("reading {what}: {e}"));
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, name: String, value: String| {
        vars.retain(|(n, _)| *n != name);
        vars.push((name, value));
    };

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (data, what, optional) = if let Some(r) = &source.secret_ref {
            let what = format!("secret \"{}\"", r.name);
            let data = secret(client, ns, &r.name)
                .await
                .map_err(|e| api_error(what.clone(), e))?
                .map(secret_strings);
            (data, what, r.optional == Some(true))
        } else if let Some(r) = &source.config_map_ref {
            let what = format!("configmap \"{}\"", r.name);
            let data = config_map(client, ns, &r.name)
                .await
                .map_err(|e| api_error(what.clone(), e))?
                .map(|c| c.data.unwrap_or_default());
            (data, what, r.optional == Some(true))
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (key, value) in data {
                    set(&mut vars, format!("{prefix}{key}"), value);
                }
            }
            None if optional => {}
            None => return Err(ConfigError(format!("{what} not found"))),
        }
    }

    for var in container.env.iter().flatten() {
        if let Some(value) = value_of(client, ns, pod, pod_ip, host_ip, var).await? {
            let expanded = expand(&value, |name| {
                vars.iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            });
            set(&mut vars, var.name.clone(), expanded);
        }
    }
    Ok(vars)
}

/// One `env` entry's value; `None` when it has none the agent can give (resource fields).
async fn value_of(
    client: &Client,
    ns: &str,
    pod: &Pod,
    pod_ip: &str,
    host_ip: &str,
    var: &EnvVar,
) -> Result<Option<String>, ConfigError> {
    let Some(from) = &var.value_from else {
        return Ok(Some(var.value.clone().unwrap_or_default()));
    };
    if let Some(f) = &from.field_ref {
        return Ok(field(pod, pod_ip, host_ip, &f.field_path));
    }
    let (what, found, optional) = if let Some(r) = &from.secret_key_ref {
        let what = format!("key \"{}\" of secret \"{}\"", r.key, r.name);
        let found = secret(client, ns, &r.name)
            .await
            .map_err(|e| ConfigError(format!("reading {what}: {e}")))?
            .and_then(|s| secret_strings(s).remove(&r.key));
        (what, found, r.optional == Some(true))
    } else if let Some(r) = &from.config_map_key_ref {
        let what = format!("key \"{}\" of configmap \"{}\"", r.key, r.name);
        let found = config_map(client, ns, &r.name)
            .await
            .map_err(|e| ConfigError(format!("reading {what}: {e}")))?
            .and_then(|c| c.data?.remove(&r.key));
        (what, found, r.optional == Some(true))
    } else {
        return Ok(None);
    };
    match found {
        Some(value) => Ok(Some(value)),
        None if optional => Ok(None),
        None => Err(ConfigError(format!("{what} not found"))),
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expands_references_as_the_kubelet_does() {
        let lookup = |name: &str| match name {
            "LEADER" => Some("10.0.0.1".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let cases = [
            ("--addr $(LEADER):29500", "--addr 10.0.0.1:29500"),
            ("$(LEADER)$(LEADER)", "10.0.0.110.0.0.1"),
            ("x$(EMPTY)y", "xy"),
            // Unknown names, escapes and unterminated references stay as written.
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(LEADER)", "$(LEADER)"),
            ("cost $5", "cost $5"),
            ("$(LEADER", "$(LEADER"),
            ("$", "$"),
            ("no refs", "no refs"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, lookup), expected, "{input}");
        }
    }
}
