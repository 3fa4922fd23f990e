{{/* The chart's short name. */}}
{{- define "tandem.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name: the release name when it already holds the chart's name. */}}
{{- define "tandem.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tandem.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tandem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The gateway's pods (also the PDB's and the Service's selector). */}}
{{- define "tandem.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tandem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "tandem.serviceAccountName" -}}
{{- default (include "tandem.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "tandem.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "tandem.adminSecretName" -}}
{{- default (printf "%s-admin" (include "tandem.fullname" .)) .Values.admin.existingSecret -}}
{{- end -}}

{{/* Where the pod finds its files (one projected volume at /etc/tandem). */}}
{{- define "tandem.configPath" -}}/etc/tandem/tandem.yaml{{- end -}}
{{- define "tandem.tokenPath" -}}/etc/tandem/admin/token{{- end -}}

{{/*
The namespaces whose pods and Services the gateway discovers: the release's
and every group's kubernetes.namespace, once each, as a JSON list.
*/}}
{{- define "tandem.discoveryNamespaces" -}}
{{- $ns := list .Release.Namespace -}}
{{- range .Values.groups -}}
{{- with .kubernetes -}}
{{- with .namespace -}}
{{- $ns = append $ns . -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $ns | uniq | toJson -}}
{{- end -}}

{{/*
tandem.yaml. The replica's identity and namespace are left out: tandem takes
them from POD_NAME and POD_NAMESPACE (the Deployment sets both).
*/}}
{{- define "tandem.config" -}}
{{- $listeners := list -}}
{{- range .Values.listeners -}}
{{- $l := dict "name" .name "address" (printf ":%d" (int .port)) -}}
{{- with .tls -}}
{{- $t := dict "cert" (printf "/etc/tandem/tls/%s/tls.crt" $l.name) "key" (printf "/etc/tandem/tls/%s/tls.key" $l.name) -}}
{{- with .minVersion -}}{{- $_ := set $t "minVersion" . -}}{{- end -}}
{{- $_ := set $l "tls" $t -}}
{{- end -}}
{{- with .hsts -}}{{- $_ := set $l "hsts" . -}}{{- end -}}
{{- if .redirectHTTPS -}}{{- $_ := set $l "redirectHTTPS" true -}}{{- end -}}
{{- with .httpsPort -}}{{- $_ := set $l "httpsPort" . -}}{{- end -}}
{{- $listeners = append $listeners $l -}}
{{- end -}}
{{- $cfg := dict "listeners" $listeners -}}
{{- $_ := set $cfg "admin" (dict "address" (printf ":%d" (int .Values.admin.port)) "tokenFile" (include "tandem.tokenPath" .)) -}}
{{- $_ := set $cfg "log" .Values.log -}}
{{- with .Values.limits -}}{{- $_ := set $cfg "limits" . -}}{{- end -}}
{{- with .Values.trustedProxies -}}{{- $_ := set $cfg "trustedProxies" . -}}{{- end -}}
{{- $_ := set $cfg "kubernetes" (dict "coordination" .Values.coordination) -}}
{{- $_ := set $cfg "groups" .Values.groups -}}
{{- toYaml $cfg -}}
{{- end -}}
