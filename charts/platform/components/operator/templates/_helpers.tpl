{{/* Names, labels and the values every template derives. */}}

{{- define "dynamo-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* fullnameOverride, else release name + "-" + name, unless the release name already contains the name. */}}
{{- define "dynamo-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dynamo-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dynamo-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dynamo-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dynamo-operator.labels" -}}
helm.sh/chart: {{ include "dynamo-operator.chart" . }}
{{ include "dynamo-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of one component (manager, webhook, cert-gen, ...): selector labels plus the component. */}}
{{- define "dynamo-operator.componentSelectorLabels" -}}
{{ include "dynamo-operator.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dynamo-operator.componentLabels" -}}
{{ include "dynamo-operator.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The marker an install-time check finds other installs by: the manager ClusterRole (cluster-wide)
or Role (namespace-restricted) carries the scope, and Helm's own annotations on it name the
release and its namespace.
*/}}
{{- define "dynamo-operator.scopeLabelKey" -}}nvidia.com/dynamo-operator-scope{{- end }}
{{- define "dynamo-operator.targetLabelKey" -}}nvidia.com/dynamo-operator-target-namespace{{- end }}

{{/* Whether to render a Prometheus Operator object: the switch when it is true or false, else
whether the API (given as "group/version/Kind") exists at install time. Call with
(list switch api root); yields "true" or "". */}}
{{- define "dynamo-operator.monitoring" -}}
{{- $switch := index . 0 }}{{- $api := index . 1 }}{{- $root := index . 2 }}
{{- if kindIs "bool" $switch }}{{ if $switch }}true{{ end }}
{{- else if $root.Capabilities.APIVersions.Has $api }}true{{- end }}
{{- end }}

{{/*
Whether the operator is pointed at the bundled NATS / etcd by default: not when
`nats.enabled` (NATS only) is false, nor when `global.<name>.install` or
`global.<name>.enabled` is false. Call with (list . "nats"); yields "true" or "".
*/}}
{{- define "dynamo-operator.bundled" -}}
{{- $root := index . 0 }}{{- $name := index . 1 }}
{{- $on := true }}
{{- if and (eq $name "nats") (hasKey $root.Values "nats") (kindIs "map" $root.Values.nats) (eq (toString (get $root.Values.nats "enabled")) "false") }}{{ $on = false }}{{ end }}
{{- $global := get ($root.Values.global | default dict) $name | default dict }}
{{- range $key := list "install" "enabled" }}
{{- if and (kindIs "map" $global) (eq (toString (get $global $key)) "false") }}{{ $on = false }}{{ end }}
{{- end }}
{{- if $on }}true{{ end }}
{{- end }}

{{- define "dynamo-operator.restricted" -}}
{{- if .Values.namespaceRestriction.enabled }}true{{- end }}
{{- end }}

{{/* The namespace a restricted operator manages: targetNamespace, else the release namespace. */}}
{{- define "dynamo-operator.targetNamespace" -}}
{{- default .Release.Namespace .Values.namespaceRestriction.targetNamespace }}
{{- end }}

{{- define "dynamo-operator.scope" -}}
{{- if include "dynamo-operator.restricted" . }}namespace-restricted{{- else }}cluster-wide{{- end }}
{{- end }}

{{- define "dynamo-operator.leaderElectionId" -}}
{{- default "dynamo.nvidia.com" .Values.controllerManager.leaderElection.id }}
{{- end }}

{{- define "dynamo-operator.leaderElectionNamespace" -}}
{{- if include "dynamo-operator.restricted" . }}
{{- include "dynamo-operator.targetNamespace" . }}
{{- else }}
{{- default "kube-system" .Values.controllerManager.leaderElection.namespace }}
{{- end }}
{{- end }}

{{- define "dynamo-operator.version" -}}
{{- default .Chart.AppVersion .Values.controllerManager.manager.image.tag }}
{{- end }}

{{- define "dynamo-operator.managerServiceAccount" -}}
{{- include "dynamo-operator.fullname" . }}-controller-manager
{{- end }}

{{/* ClusterRoles the operator binds to `planner-serviceaccount` and `epp-serviceaccount` in each
graph namespace (cluster-wide mode). */}}
{{- define "dynamo-operator.plannerClusterRole" -}}
{{- include "dynamo-operator.fullname" . }}-planner
{{- end }}

{{- define "dynamo-operator.eppClusterRole" -}}
{{- include "dynamo-operator.fullname" . }}-epp
{{- end }}

{{- define "dynamo-operator.webhookServiceAccount" -}}
{{- include "dynamo-operator.fullname" . }}-webhook
{{- end }}

{{- define "dynamo-operator.webhookServiceName" -}}
{{- include "dynamo-operator.fullname" . }}-webhook-service
{{- end }}

{{- define "dynamo-operator.validatingConfigurationName" -}}
{{- if include "dynamo-operator.restricted" . }}
{{- printf "%s-validating-%s" (include "dynamo-operator.fullname" .) .Release.Namespace | trunc 253 }}
{{- else }}
{{- include "dynamo-operator.fullname" . }}-validating
{{- end }}
{{- end }}

{{/* Automatic certificates: neither cert-manager nor an external Secret. */}}
{{- define "dynamo-operator.autoCerts" -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.certManager.enabled) (not .Values.webhook.certificateSecret.external) }}true{{- end }}
{{- end }}

{{- define "dynamo-operator.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/*
Restricted Pod Security Standard settings shared by every pod of this chart. With `openshift`
the fixed UID/GID 65532 is left out (OpenShift's restricted SCC assigns them). A
`podSecurityContext` / `containerSecurityContext` map replaces these settings; `{}` omits them.
*/}}
{{- define "dynamo-operator.defaultPodSecurityContext" -}}
runAsNonRoot: true
{{- if not .Values.openshift }}
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "dynamo-operator.defaultContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
{{- if not .Values.openshift }}
runAsUser: 65532
{{- end }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* A securityContext field: the given map (omitted when empty), else the default. Call with
(list value defaultTemplate root indent); renders "securityContext:" with its body or nothing. */}}
{{- define "dynamo-operator.securityContextField" -}}
{{- $value := index . 0 }}{{- $default := index . 1 }}{{- $root := index . 2 }}{{- $indent := index . 3 }}
{{- if kindIs "map" $value }}
{{- if $value }}
securityContext:
{{- toYaml $value | nindent $indent }}
{{- end }}
{{- else }}
securityContext:
{{- include $default $root | nindent $indent }}
{{- end }}
{{- end }}

{{/* Pod securityContext line (at pod spec level, 6 spaces in a Deployment/Job). */}}
{{- define "dynamo-operator.podSecurityContext" -}}
{{- include "dynamo-operator.securityContextField" (list .Values.podSecurityContext "dynamo-operator.defaultPodSecurityContext" . 2) }}
{{- end }}

{{/* Container securityContext: `override` (e.g. controllerManager.manager.containerSecurityContext)
when it is a map, else containerSecurityContext, else the default. Call with (dict "root" . "override" x). */}}
{{- define "dynamo-operator.containerSecurityContext" -}}
{{- $value := .root.Values.containerSecurityContext }}
{{- if kindIs "map" .override }}{{ $value = .override }}{{ end }}
{{- include "dynamo-operator.securityContextField" (list $value "dynamo-operator.defaultContainerSecurityContext" .root 2) }}
{{- end }}

{{/*
Scheduling of one pod: the component's own nodeSelector, tolerations, affinity,
topologySpreadConstraints and priorityClassName where set, else the controllerManager's.
Call with (dict "root" . "own" <component values or dict>); `spread` adds preferred
anti-affinity and a topology spread by hostname when no affinity / constraints are given.
*/}}
{{- define "dynamo-operator.scheduling" -}}
{{- $cm := .root.Values.controllerManager }}
{{- $own := .own | default dict }}
{{- with (get $own "priorityClassName") | default $cm.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with (get $own "nodeSelector") | default $cm.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (get $own "tolerations") | default $cm.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := (get $own "affinity") | default $cm.affinity }}
{{- /* The spread joins an affinity map that has no podAntiAffinity of its own. */}}
{{- if and .spread (or (not $affinity) (and (kindIs "map" $affinity) (not (hasKey $affinity "podAntiAffinity")))) }}
{{- $spread := dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" (dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (fromYaml .spread))))) }}
{{- $affinity = merge (dict "podAntiAffinity" $spread) (deepCopy ($affinity | default dict)) }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (get $own "topologySpreadConstraints") }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- else }}
{{- if .spread }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- .spread | nindent 8 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Registry secret the components use: an existing one, or the one this chart renders. */}}
{{- define "dynamo-operator.componentsDockerRegistrySecretName" -}}
{{- if .Values.dynamo.dockerRegistry.existingSecretName }}
{{- .Values.dynamo.dockerRegistry.existingSecretName }}
{{- else }}
{{- include "dynamo-operator.fullname" . }}-regcred
{{- end }}
{{- end }}

{{/* Registry host of a server value: its first path segment, docker.io normalised. */}}
{{- define "dynamo-operator.registryHost" -}}
{{- $server := . | trimPrefix "https://" | trimPrefix "http://" }}
{{- $host := first (splitList "/" $server) }}
{{- if or (eq $host "docker.io") (eq $host "index.docker.io") }}https://index.docker.io/v1/{{- else }}{{ $host }}{{- end }}
{{- end }}

{{/* Go-style duration (30s, 2m, 1h, 1m30s) in whole seconds; fails naming the key otherwise. */}}
{{- define "dynamo-operator.durationSeconds" -}}
{{- $value := toString .value }}
{{- if not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $value) }}
{{- fail (printf "%s: %q is not a duration like 30s, 2m or 1h" .key $value) }}
{{- end }}
{{- if eq $value "" }}
{{- fail (printf "%s: must not be empty (a duration like 30s)" .key) }}
{{- end }}
{{- $total := 0 }}
{{- range $part := regexFindAll "[0-9]+[hms]" $value -1 }}
{{- $n := trimSuffix "h" (trimSuffix "m" (trimSuffix "s" $part)) | atoi }}
{{- if hasSuffix "h" $part }}{{ $total = add $total (mul $n 3600) }}{{ else if hasSuffix "m" $part }}{{ $total = add $total (mul $n 60) }}{{ else }}{{ $total = add $total $n }}{{ end }}
{{- end }}
{{- $total }}
{{- end }}
