{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "connect-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name, suffixed with the chart name unless
the release name already contains it.
*/}}
{{- define "connect-operator.fullname" -}}
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

{{- define "connect-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that never change for the life of a release: the Deployment's selector. */}}
{{- define "connect-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connect-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "connect-operator.labels" -}}
helm.sh/chart: {{ include "connect-operator.chart" . }}
{{ include "connect-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: connect-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "connect-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connect-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is set (the tag is then ignored),
else repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "connect-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
"true" when leader election is on: forced by leaderElection.enabled, or automatic with
more than one replica. Rejects two or more replicas without it.
*/}}
{{- define "connect-operator.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- if kindIs "bool" $enabled }}
{{- if and (not $enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "leaderElection.enabled=false with replicaCount=%d: every replica would reconcile and call AWS at once; enable leader election or use one replica" (int .Values.replicaCount)) }}
{{- end }}
{{- ternary "true" "false" $enabled }}
{{- else }}
{{- ternary "true" "false" (gt (int .Values.replicaCount) 1) }}
{{- end }}
{{- end }}

{{- define "connect-operator.leaseName" -}}
{{- default (include "connect-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Seconds in a single-unit duration such as 30s, 2m or 500ms (the forms values.schema.json
allows for aws.timeout); milliseconds round up to a whole second.
*/}}
{{- define "connect-operator.durationSeconds" -}}
{{- $d := toString . }}
{{- if hasSuffix "ms" $d }}
{{- div (add (trimSuffix "ms" $d | atoi) 999) 1000 }}
{{- else if hasSuffix "s" $d }}
{{- trimSuffix "s" $d | atoi }}
{{- else if hasSuffix "m" $d }}
{{- mul (trimSuffix "m" $d | atoi) 60 }}
{{- else }}
{{- fail (printf "cannot read the duration %q: use a number followed by ms, s or m" $d) }}
{{- end }}
{{- end }}

{{/* Checks between values that the JSON schema cannot express. */}}
{{- define "connect-operator.validate" -}}
{{- if not .Values.aws.region }}
{{- fail "aws.region is required: the AWS region for ConnectInstances that do not set spec.region (for example --set aws.region=eu-west-2)" }}
{{- end }}
{{- if not .Values.image.repository }}
{{- fail "image.repository is required: no public registry serves the operator's image; set image.repository to where you pushed the image built by `make image` (for example --set image.repository=registry.example.com/connect-operator; README: Build and push the image)" }}
{{- end }}
{{- $timeout := include "connect-operator.durationSeconds" .Values.aws.timeout | int }}
{{- if le (int .Values.terminationGracePeriodSeconds) $timeout }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than aws.timeout (%s): on shutdown an in-flight AWS call must be able to finish and its result reach the status" (int .Values.terminationGracePeriodSeconds) .Values.aws.timeout) }}
{{- end }}
{{- if and .Values.defaultAccount.create .Values.defaultAccount.externalId (not .Values.defaultAccount.roleArn) }}
{{- fail "defaultAccount.externalId requires defaultAccount.roleArn: the external id is passed to STS AssumeRole for that role (the ConnectAccount CRD refuses it alone)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled requires metrics.service.enabled" }}
{{- end }}
{{- end }}
