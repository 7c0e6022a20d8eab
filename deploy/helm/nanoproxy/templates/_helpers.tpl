{{/*
The chart name, or nameOverride.
*/}}
{{- define "nanoproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release
name if it already contains the chart name, else "<release>-<chart>".
*/}}
{{- define "nanoproxy.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "nanoproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object. The plain manifests in deploy/kubernetes/ are this
chart's output without helm.sh/chart and app.kubernetes.io/managed-by.
*/}}
{{- define "nanoproxy.labels" -}}
helm.sh/chart: {{ include "nanoproxy.chart" . }}
{{ include "nanoproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods.
*/}}
{{- define "nanoproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nanoproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "nanoproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nanoproxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The one image both containers run. The original chart's image.prefix named
two images (-proxy and -controller) that this NanoProxy does not have: say
so instead of deploying images that cannot run here.
*/}}
{{- define "nanoproxy.image" -}}
{{- if .Values.image.prefix }}
{{- fail (printf "image.prefix (%s) is a value of the original NanoProxy chart, whose proxy and controller were two images; this NanoProxy is one image: remove image.prefix and set image.repository (and image.tag) to your build of the Dockerfile" .Values.image.prefix) }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
"true" when debug is on. The original chart's debug was a string (""), so
"", false, "false" and "0" all mean off.
*/}}
{{- define "nanoproxy.debug" -}}
{{- $d := .Values.debug | toString | lower }}
{{- if not (has $d (list "" "false" "0" "<nil>")) }}true{{ end }}
{{- end }}

{{/*
The proxy's port name: https when it terminates TLS.
*/}}
{{- define "nanoproxy.portName" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop delay and the drain must fit.
*/}}
{{- define "nanoproxy.gracePeriod" -}}
{{- $needed := add (int .Values.proxy.preStopDelay) (int (ceil (float64 .Values.proxy.shutdownTimeout))) }}
{{- if eq (toString .Values.terminationGracePeriodSeconds) "" }}
{{- add $needed 5 }}
{{- else if lt (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least proxy.preStopDelay + proxy.shutdownTimeout (%d), or Kubernetes kills the proxy before requests in flight finish" .Values.terminationGracePeriodSeconds $needed) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}
