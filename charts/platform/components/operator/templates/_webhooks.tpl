{{/*
The webhooks of the ValidatingWebhookConfiguration, without caBundle except in external mode.
The cert generator gets the same list (as JSON) to create them on the first install.
*/}}
{{- define "dynamo-operator.webhooks" -}}
{{- $restricted := .Values.namespaceRestriction.enabled | default false }}
{{- $external := and .Values.webhook.certificateSecret.external (not .Values.webhook.certManager.enabled) }}
{{- range $kind := list "dynamocomponentdeployment" "dynamographdeployment" "dynamomodel" }}
- name: v{{ $kind }}.kb.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: {{ $.Values.webhook.failurePolicy }}
  timeoutSeconds: {{ $.Values.webhook.timeoutSeconds }}
  matchPolicy: Equivalent
  clientConfig:
    service:
      name: {{ include "dynamo-operator.webhookServiceName" $ }}
      namespace: {{ $.Release.Namespace }}
      path: /validate-nvidia-com-v1alpha1-{{ $kind }}
      port: 443
    {{- if and $external $.Values.webhook.caBundle }}
    caBundle: {{ $.Values.webhook.caBundle }}
    {{- end }}
  rules:
    - apiGroups: [nvidia.com]
      apiVersions: [v1alpha1]
      operations: [CREATE, UPDATE]
      resources: [{{ $kind }}s]
      scope: Namespaced
  {{- if $.Values.webhook.namespaceSelector }}
  namespaceSelector:
    {{- toYaml $.Values.webhook.namespaceSelector | nindent 4 }}
  {{- else if $restricted }}
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ include "dynamo-operator.targetNamespace" $ }}
  {{- else }}
  namespaceSelector: {}
  {{- end }}
  objectSelector: {}
{{- end }}
{{- end }}

{{/*
The cert generator's args and env, shared by the hook Jobs and the renewal CronJob so they all
mint the same certificate and write the same webhooks. Call with (dict "root" $ "phase" P):
"pre" runs before Helm creates the configuration (skips it when missing); "post" and "renew"
wait for it.
*/}}
{{- define "dynamo-operator.certGenArgsAndEnv" -}}
{{- $root := .root }}
{{- $validity := int $root.Values.webhook.certificateValidity }}
{{- $renewBefore := ternary 30 (div $validity 3) (gt $validity 90) }}
args:
  - --namespace={{ $root.Release.Namespace }}
  - --secret-name={{ $root.Values.webhook.certificateSecret.name }}
  - --service-name={{ include "dynamo-operator.webhookServiceName" $root }}
  - --cluster-domain={{ $root.Values.kubernetesClusterDomain }}
  - --validity-days={{ $validity }}
  - --ca-validity-days={{ mul $validity 10 }}
  - --renew-before-days={{ $renewBefore }}
  - --validating-configuration={{ include "dynamo-operator.validatingConfigurationName" $root }}
  {{- if eq .phase "pre" }}
  - --skip-missing-configurations
  {{- else }}
  - --wait-for-configurations=60s
  {{- end }}
env:
  - name: CERTGEN_VALIDATING_WEBHOOKS
    value: {{ include "dynamo-operator.webhooks" $root | fromYamlArray | toJson | quote }}
{{- end }}
