//! The SSH key pair of TRT-LLM multinode groups (mpirun reaches the workers over SSH): the
//! Secret the chart makes in the operator's namespace, copied once into each namespace that
//! runs such a graph.
//!
//! As upstream: same name, type and data; no owner (other graphs of the namespace use it too);
//! a copy that exists (the user's own, or an earlier one) is never overwritten.

use crate::desired::naming::service_of;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::DynamoComponentDeployment;

use super::reconcile::Error;
use crate::context::Context;
use crate::desired::groups::runs_mpi;

/// Namespaces seen holding the Secret, and when: a converged graph reads nothing for
/// [`RECHECK`], then looks again (the namespace, or the copy, may have been deleted and made
/// anew since).
#[derive(Default)]
pub struct Replicated(Mutex<HashMap<String, Instant>>);

/// How long a namespace seen holding the Secret is trusted to still hold it.
const RECHECK: Duration = Duration::from_secs(600);

impl Replicated {
    fn holds(&self, namespace: &str) -> bool {
        let seen = self.0.lock().unwrap();
        seen.get(namespace).is_some_and(|at| at.elapsed() < RECHECK)
    }

    fn saw(&self, namespace: &str) {
        let mut seen = self.0.lock().unwrap();
        seen.retain(|_, at| at.elapsed() < RECHECK);
        seen.insert(namespace.to_owned(), Instant::now());
    }
}

/// Makes sure the Secret is in `namespace` if one of `components` runs mpirun; the message
/// saying why it cannot be, if so.
pub async fn ensure_mpi_secret(
    components: &[DynamoComponentDeployment],
    namespace: &str,
    context: &Context,
    replicated: &Replicated,
) -> Result<Option<String>, Error> {
    let Some(component) = components.iter().find(|c| runs_mpi(c)) else {
        return Ok(None);
    };
    if replicated.holds(namespace) {
        return Ok(None);
    }
    let service = service_of(component);
    let Some(source) = &context.config.mpi_ssh_secret else {
        return Ok(Some(format!(
            "service {service} runs TRT-LLM on several nodes, which needs mpirun's SSH key Secret; the operator was started without --mpi-run-ssh-secret-name (or without its namespace: --mpi-run-ssh-secret-namespace, else POD_NAMESPACE)"
        )));
    };
    let target: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    if target.get_opt(&source.name).await?.is_none() {
        let origin: Api<Secret> = Api::namespaced(context.client.clone(), &source.namespace);
        let original = match origin.get_opt(&source.name).await {
            Ok(original) => original,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Ok(Some(format!(
                    "service {service} runs TRT-LLM on several nodes, which needs mpirun's SSH key Secret {}/{}; the operator's role may not read it",
                    source.namespace, source.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(original) = original else {
            return Ok(Some(format!(
                "service {service} runs TRT-LLM on several nodes, which needs mpirun's SSH key Secret {}/{} (--mpi-run-ssh-secret-name); it does not exist",
                source.namespace, source.name
            )));
        };
        let copy = Secret {
            metadata: ObjectMeta {
                name: Some(source.name.clone()),
                namespace: Some(namespace.to_owned()),
                labels: Some(
                    [(
                        label::MANAGED_BY.to_owned(),
                        label::MANAGED_BY_VALUE.to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            type_: original.type_.clone(),
            data: original.data.clone(),
            ..Default::default()
        };
        context.applier.count_write();
        match target.create(&PostParams::default(), &copy).await {
            Ok(_) => {
                tracing::info!(%namespace, secret = %source.name, "copied the MPI SSH Secret");
            }
            // Made meanwhile (by another graph's reconcile, or the user): it stands.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    replicated.saw(namespace);
    Ok(None)
}
