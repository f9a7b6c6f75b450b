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
