{{/*
The platform's four services: the name of each (its image, Service and labels), its port (the
image's, which serves the API, /health, /ready and /metrics), the key of its values and the prefix
of its settings.
*/}}
{{- define "codelab.services" -}}
auth: { port: 8003, key: auth, prefix: AUTH_SERVICE }
gateway: { port: 8000, key: gateway, prefix: GATEWAY }
runtime: { port: 8001, key: runtime, prefix: AGENT_RUNTIME }
llm-proxy: { port: 8002, key: llmProxy, prefix: LLM_PROXY }
{{- end }}

{{- define "codelab.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "codelab" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-codelab" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{/* Labels of every object; `component` names the service (or postgresql, redis, migrations). */}}
{{- define "codelab.labels" -}}
app.kubernetes.io/name: codelab
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: codelab-platform
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* What selects a component's pods (never changes over upgrades). */}}
{{- define "codelab.selector" -}}
app.kubernetes.io/name: codelab
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "codelab.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end }}

{{/* The Secret holding the platform's secrets: the user's, or the chart's own. */}}
{{- define "codelab.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "codelab.fullname" .)) -}}
{{- end }}

{{/* The bundled database's Service name, and its own Secret (the password the chart generated). */}}
{{- define "codelab.postgresqlName" -}}
{{- printf "%s-postgresql" (include "codelab.fullname" .) -}}
{{- end }}
{{- define "codelab.redisName" -}}
{{- printf "%s-redis" (include "codelab.fullname" .) -}}
{{- end }}

{{/* A component's number of replicas at most (autoscaling: its maximum). */}}
{{- define "codelab.maxReplicas" -}}
{{- if .autoscaling.enabled -}}{{ .autoscaling.maxReplicas }}{{- else -}}{{ .replicas }}{{- end -}}
{{- end }}

{{/*
The security context of every container: non-root (the images' `node` user), read-only root
filesystem, no capability, no privilege escalation, the runtime's default seccomp profile.
*/}}
{{- define "codelab.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 1000 }}
runAsGroup: {{ .gid | default 1000 }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: { drop: [ALL] }
seccompProfile: { type: RuntimeDefault }
{{- end }}

{{- define "codelab.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 1000 }}
runAsGroup: {{ .gid | default 1000 }}
fsGroup: {{ .gid | default 1000 }}
seccompProfile: { type: RuntimeDefault }
{{- end }}

{{/*
A value of the chart's own Secret: the one given in values, else the one the Secret already holds
(generated on install, kept over upgrades), else a new random one.
*/}}
{{- define "codelab.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (printf "%s-secrets" (include "codelab.fullname" .root)) -}}
{{- if .value -}}
{{- .value -}}
{{- else if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end }}
