{{/*
Install-time checks. Each failure is one sentence naming the key (or the conflicting release)
and the way out. Checks that need the cluster use `lookup`, which finds nothing under
`helm template`, so there they are skipped rather than failed.
*/}}

{{- define "dynamo-operator.validate" -}}
{{- include "dynamo-operator.validateValues" . }}
{{- include "dynamo-operator.validateScope" . }}
{{- include "dynamo-operator.validateDockerConfigSecret" . }}
{{- end }}

{{- define "dynamo-operator.validateValues" -}}
{{- $v := .Values }}
{{- if not (kindIs "bool" $v.namespaceRestriction.enabled) }}
{{- fail (printf "dynamo-operator.namespaceRestriction.enabled must be true or false, got %v" $v.namespaceRestriction.enabled) }}
{{- end }}
{{- if and $v.namespaceRestriction.enabled (not (include "dynamo-operator.targetNamespace" .)) }}
{{- fail "dynamo-operator.namespaceRestriction.targetNamespace is empty and the release has no namespace: set targetNamespace or install with --namespace" }}
{{- end }}
{{- with $v.namespaceRestriction.targetNamespace }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" (toString .)) }}
{{- fail (printf "dynamo-operator.namespaceRestriction.targetNamespace: %q is not a valid namespace name" (toString .)) }}
{{- end }}
{{- end }}
{{- if not (has (toString $v.discoveryBackend) (list "kubernetes" "etcd")) }}
{{- fail (printf "dynamo-operator.discoveryBackend must be \"kubernetes\" or \"etcd\", got %q" (toString $v.discoveryBackend)) }}
{{- end }}
{{- $duration := include "dynamo-operator.durationSeconds" (dict "key" "dynamo-operator.namespaceRestriction.lease.duration" "value" $v.namespaceRestriction.lease.duration) | atoi }}
{{- $renew := include "dynamo-operator.durationSeconds" (dict "key" "dynamo-operator.namespaceRestriction.lease.renewInterval" "value" $v.namespaceRestriction.lease.renewInterval) | atoi }}
{{- if or (le $renew 0) (ge $renew $duration) }}
{{- fail (printf "dynamo-operator.namespaceRestriction.lease.renewInterval (%s) must be positive and shorter than lease.duration (%s)" (toString $v.namespaceRestriction.lease.renewInterval) (toString $v.namespaceRestriction.lease.duration)) }}
{{- end }}
{{- if not $v.namespaceRestriction.enabled }}
{{- $id := toString (default "" $v.controllerManager.leaderElection.id) }}
{{- if and $id (ne $id "dynamo.nvidia.com") }}
{{- fail (printf "dynamo-operator.controllerManager.leaderElection.id: cluster-wide operators must all use the id dynamo.nvidia.com so only one leads (got %q); leave it empty" $id) }}
{{- end }}
{{- if and $v.controllerManager.leaderElection.namespace (eq (toString $v.controllerManager.leaderElection.namespace) .Release.Namespace) }}
{{- fail (printf "dynamo-operator.controllerManager.leaderElection.namespace: a cluster-wide operator must not elect in its release namespace %q, where another install could not see the lease; leave it empty (kube-system) or name a namespace every cluster-wide install shares" .Release.Namespace) }}
{{- end }}
{{- else if $v.controllerManager.leaderElection.namespace }}
{{- if ne (toString $v.controllerManager.leaderElection.namespace) (include "dynamo-operator.targetNamespace" .) }}
{{- fail (printf "dynamo-operator.controllerManager.leaderElection.namespace: a namespace-restricted operator elects in its target namespace %q (it has no rights elsewhere), got %q; leave it empty" (include "dynamo-operator.targetNamespace" .) (toString $v.controllerManager.leaderElection.namespace)) }}
{{- end }}
{{- end }}
{{- range $key, $n := dict "controllerManager.replicas" $v.controllerManager.replicas "webhook.replicas" $v.webhook.replicas }}
{{- if or (not (or (kindIs "int" $n) (kindIs "int64" $n) (kindIs "float64" $n))) (lt (int $n) 0) }}
{{- fail (printf "dynamo-operator.%s must be a whole number of at least 0, got %v" $key $n) }}
{{- end }}
{{- end }}
{{- $w := $v.webhook }}
{{- if not (has (toString $w.failurePolicy) (list "Fail" "Ignore")) }}
{{- fail (printf "dynamo-operator.webhook.failurePolicy must be \"Fail\" or \"Ignore\", got %q" (toString $w.failurePolicy)) }}
{{- end }}
{{- if or (not (or (kindIs "int" $w.timeoutSeconds) (kindIs "int64" $w.timeoutSeconds) (kindIs "float64" $w.timeoutSeconds))) (lt (int $w.timeoutSeconds) 1) (gt (int $w.timeoutSeconds) 30) }}
{{- fail (printf "dynamo-operator.webhook.timeoutSeconds must be a whole number from 1 to 30 (the API server's limit), got %v" $w.timeoutSeconds) }}
{{- end }}
{{- if or (not (or (kindIs "int" $w.certificateValidity) (kindIs "int64" $w.certificateValidity) (kindIs "float64" $w.certificateValidity))) (lt (int $w.certificateValidity) 2) }}
{{- fail (printf "dynamo-operator.webhook.certificateValidity must be a whole number of days, at least 2, got %v" $w.certificateValidity) }}
{{- end }}
{{- $renewal := default (dict) $w.certificateRenewal }}
{{- if not (kindIs "bool" $renewal.enabled) }}
{{- fail (printf "dynamo-operator.webhook.certificateRenewal.enabled must be true or false, got %v" $renewal.enabled) }}
{{- end }}
{{- if and $renewal.enabled (include "dynamo-operator.autoCerts" .) }}
{{- if not (regexMatch "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\\S+( \\S+){4})$" (toString $renewal.schedule)) }}
{{- fail (printf "dynamo-operator.webhook.certificateRenewal.schedule must be a cron schedule of five fields (like \"17 3 * * *\") or a macro like @daily, got %q" (toString $renewal.schedule)) }}
{{- end }}
{{- end }}
{{- if not (kindIs "map" $w.namespaceSelector) }}
{{- fail (printf "dynamo-operator.webhook.namespaceSelector must be a label selector object (matchLabels / matchExpressions), got %v" $w.namespaceSelector) }}
{{- end }}
{{- if and $w.certManager.enabled $w.certificateSecret.external }}
{{- fail "dynamo-operator.webhook.certManager.enabled and dynamo-operator.webhook.certificateSecret.external are both true: choose one source of the webhook certificate" }}
{{- end }}
{{- if and $w.enabled $w.certificateSecret.external (not $w.certManager.enabled) }}
{{- if not $w.caBundle }}
{{- fail "dynamo-operator.webhook.caBundle is empty but webhook.certificateSecret.external is true: set it to the base64-encoded PEM of the CA that signed your certificate, or the API server cannot trust the webhook" }}
{{- end }}
{{- if not (contains "BEGIN CERTIFICATE" (b64dec (toString $w.caBundle))) }}
{{- fail "dynamo-operator.webhook.caBundle is not a base64-encoded PEM certificate" }}
{{- end }}
{{- end }}
{{- if not $w.certificateSecret.name }}
{{- fail "dynamo-operator.webhook.certificateSecret.name must not be empty" }}
{{- end }}
{{- $r := $v.dynamo.dockerRegistry }}
{{- if and $r.useKubernetesSecret (not $r.existingSecretName) }}
{{- range $key := list "server" "username" "password" }}
{{- if not (index $r $key) }}
{{- fail (printf "dynamo-operator.dynamo.dockerRegistry.%s is required when dockerRegistry.useKubernetesSecret is true and no existingSecretName is given" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The conflict table: at most one cluster-wide operator; restricted operators only in different
target namespaces. A restricted operator beside a cluster-wide one (hybrid mode, either order)
is allowed: the restricted operator holds the namespace-scope Lease in its target namespace,
and the cluster-wide operator and webhook leave that namespace alone while the Lease is live.
Other installs are found by the scope label on their manager ClusterRole / Role; Helm's
annotations on that object name their release.
*/}}
{{- define "dynamo-operator.validateScope" -}}
{{- $scopeKey := include "dynamo-operator.scopeLabelKey" . }}
{{- $targetKey := include "dynamo-operator.targetLabelKey" . }}
{{- $restricted := include "dynamo-operator.restricted" . }}
{{- $target := include "dynamo-operator.targetNamespace" . }}
{{- $self := printf "%s/%s" .Release.Namespace .Release.Name }}
{{- $others := list }}
{{- range $kind := list "ClusterRole" "Role" }}
{{- $found := lookup "rbac.authorization.k8s.io/v1" $kind "" "" }}
{{- range $object := (default (dict) $found).items | default list }}
{{- $labels := default (dict) $object.metadata.labels }}
{{- if hasKey $labels $scopeKey }}
{{- $annotations := default (dict) $object.metadata.annotations }}
{{- $release := default (index $labels "app.kubernetes.io/instance" | default "unknown") (index $annotations "meta.helm.sh/release-name") }}
{{- $releaseNs := default ($object.metadata.namespace | default "unknown") (index $annotations "meta.helm.sh/release-namespace") }}
{{- /* Left behind by a release whose namespace was deleted: nothing of it runs any more. */}}
{{- $alive := lookup "v1" "Namespace" "" $releaseNs }}
{{- if and $alive (ne (printf "%s/%s" $releaseNs $release) $self) }}
{{- $others = append $others (dict "scope" (index $labels $scopeKey) "target" (index $labels $targetKey | default "") "release" $release "namespace" $releaseNs) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $other := $others }}
{{- if and (eq $other.scope "cluster-wide") (not $restricted) }}
{{- fail (printf "a cluster-wide Dynamo operator is already installed (release %q in namespace %q); only one may run per cluster: use it, remove it first (helm uninstall %s -n %s), or install this one with dynamo-operator.namespaceRestriction.enabled=true to manage one namespace beside it" $other.release $other.namespace $other.release $other.namespace) }}
{{- else if and (ne $other.scope "cluster-wide") $restricted (eq $other.target $target) }}
{{- fail (printf "namespace %q is already managed by the namespace-restricted Dynamo operator of release %q in namespace %q: choose another dynamo-operator.namespaceRestriction.targetNamespace, or remove that release first (helm uninstall %s -n %s)" $target $other.release $other.namespace $other.release $other.namespace) }}
{{- end }}
{{- end }}
{{- end }}

{{/* An existing registry Secret must exist, be a dockerconfigjson and hold the registry. */}}
{{- define "dynamo-operator.validateDockerConfigSecret" -}}
{{- $r := .Values.dynamo.dockerRegistry }}
{{- if and $r.useKubernetesSecret $r.existingSecretName }}
{{- $namespaces := lookup "v1" "Namespace" "" "" }}
{{- if $namespaces }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace $r.existingSecretName }}
{{- if not $secret }}
{{- fail (printf "dynamo-operator.dynamo.dockerRegistry.existingSecretName: Secret %q not found in namespace %q" $r.existingSecretName .Release.Namespace) }}
{{- end }}
{{- if ne $secret.type "kubernetes.io/dockerconfigjson" }}
{{- fail (printf "dynamo-operator.dynamo.dockerRegistry.existingSecretName: Secret %q has type %q, not kubernetes.io/dockerconfigjson" $r.existingSecretName $secret.type) }}
{{- end }}
{{- if $r.server }}
{{- $config := index $secret.data ".dockerconfigjson" | b64dec | fromJson }}
{{- $host := include "dynamo-operator.registryHost" $r.server }}
{{- if not (hasKey (default (dict) $config.auths) $host) }}
{{- fail (printf "dynamo-operator.dynamo.dockerRegistry.existingSecretName: Secret %q has no credentials for registry %q" $r.existingSecretName $host) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
