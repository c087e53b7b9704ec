{{/* The chart's name, cut to a DNS label. */}}
{{- define "ecs-image-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already contains the chart's name. */}}
{{- define "ecs-image-operator.fullname" -}}
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

{{- define "ecs-image-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ecs-image-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecs-image-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the `helm test` Pod, which the NetworkPolicy lets reach port 8080. */}}
{{- define "ecs-image-operator.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ecs-image-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}

{{- define "ecs-image-operator.labels" -}}
helm.sh/chart: {{ include "ecs-image-operator.chart" . }}
{{ include "ecs-image-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: ecs-image-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ecs-image-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecs-image-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ecs-image-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "ecs-image-operator.leaseName" -}}
{{- default (include "ecs-image-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The restricted container security context (Pod Security Standards "restricted"). */}}
{{- define "ecs-image-operator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Combinations the schema cannot express; rendering fails with the reason. */}}
{{- define "ecs-image-operator.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas > 1 needs leaderElection.enabled=true: two active operators would both call ECS" }}
{{- end }}
{{- if and .Values.credentials.existingSecret .Values.credentials.rrsa.enabled }}
{{- fail "choose one of credentials.existingSecret and credentials.rrsa.enabled" }}
{{- end }}
{{- if and .Values.emulator.enabled (or .Values.credentials.existingSecret .Values.credentials.rrsa.enabled .Values.ecsEndpoint) }}
{{- fail "emulator.enabled replaces the ECS endpoint and credentials: leave ecsEndpoint, credentials.existingSecret and credentials.rrsa unset" }}
{{- end }}
{{- end }}
