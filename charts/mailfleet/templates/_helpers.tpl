{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "mailfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, unless it does not already contain the chart name. */}}
{{- define "mailfleet.fullname" -}}
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

{{- define "mailfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mailfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "mailfleet.labels" -}}
helm.sh/chart: {{ include "mailfleet.chart" . }}
{{ include "mailfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailfleet
{{- end }}

{{- define "mailfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mailfleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "mailfleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC rules, read from files/rbac.yaml (a verbatim copy of deploy/rbac.yaml made
by scripts/sync-chart.ts; a test keeps them identical), so the chart and the operator's own
manifest cannot drift. Returns a YAML map {cluster: [...], leaderElection: [...]}.
*/}}
{{- define "mailfleet.rbacRules" -}}
{{- $cluster := list }}
{{- $leader := list }}
{{- range $doc := regexSplit "(?m)^---[ \\t]*$" (.Files.Get "files/rbac.yaml") -1 }}
{{- $o := fromYaml $doc }}
{{- if eq (toString $o.kind) "ClusterRole" }}{{ $cluster = $o.rules }}{{ end }}
{{- if eq (toString $o.kind) "Role" }}{{ $leader = $o.rules }}{{ end }}
{{- end }}
{{- if or (not $cluster) (not $leader) }}
{{- fail "files/rbac.yaml must hold a ClusterRole and a Role (run: node scripts/sync-chart.ts)" }}
{{- end }}
{{- toYaml (dict "cluster" $cluster "leaderElection" $leader) }}
{{- end }}
