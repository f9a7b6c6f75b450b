//! The SSH key pair of TRT-LLM multinode groups (mpirun reaches the workers over SSH): the
//! Secret the chart makes in the operator's namespace, copied once into each namespace that
//! runs such a graph.
//!
//! As upstream: same name, type and data; no owner (other graphs of the namespace use it too);
//! a copy that exists (the user's own, or an earlier one) is never overwritten.

use crate::desired::naming::service_of;
use std::collections::HashSet;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::DynamoComponentDeployment;

use super::reconcile::Error;
use crate::context::Context;
use crate::desired::groups::runs_mpi;

/// Namespaces known to hold the Secret, so a converged graph reads nothing.
#[derive(Default)]
pub struct Replicated(Mutex<HashSet<String>>);

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
    if replicated.0.lock().unwrap().contains(namespace) {
        return Ok(None);
    }
    let service = service_of(component);
    let Some(source) = &context.config.mpi_ssh_secret else {
        return Ok(Some(format!(
            "service {service} runs TRT-LLM on several nodes, which needs mpirun's SSH key Secret; the operator was started without --mpi-run-ssh-secret-name"
        )));
    };
    let target: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    if target.get_opt(&source.name).await?.is_none() {
        let origin: Api<Secret> = Api::namespaced(context.client.clone(), &source.namespace);
        let Some(original) = origin.get_opt(&source.name).await? else {
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
    replicated.0.lock().unwrap().insert(namespace.to_owned());
    Ok(None)
}
