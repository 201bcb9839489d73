{{/* Names and labels. */}}
{{- define "claimcheck.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "claimcheck.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selectorLabels COMPONENT: usage (include "claimcheck.selectorLabels" (list . "api")) */}}
{{- define "claimcheck.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "claimcheck.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Secret environment, by reference only. */}}
{{- define "claimcheck.secretEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.database.existingSecret is required" .Values.secrets.database.existingSecret }}
      key: {{ .Values.secrets.database.key }}
{{- with .Values.secrets.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.secrets.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.secrets.s3.secretAccessKeyKey }}
{{- end }}
{{- with .Values.secrets.urlSigningKey.existingSecret }}
- name: CLAIMCHECK_URL_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.secrets.urlSigningKey.key }}
{{- end }}
{{- include "claimcheck.listenEnv" . }}
{{- end -}}

{{/* The direct (session) connection for LISTEN and migrations, when
     DATABASE_URL goes through a transaction-pooling PgBouncer. */}}
{{- define "claimcheck.listenEnv" -}}
{{- with .Values.secrets.listenDatabase.existingSecret }}
- name: CLAIMCHECK_LISTEN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.secrets.listenDatabase.key }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by API, worker and migration pods. */}}
{{- define "claimcheck.podCommon" -}}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
