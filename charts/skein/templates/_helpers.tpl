{{/*
Names and labels shared by every template.
*/}}

{{/* The release's base name: cluster-scoped objects carry it, so two releases never collide. */}}
{{- define "skein.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: skein.component (dict "root" $ "component" "operator"). */}}
{{- define "skein.component" -}}
{{- printf "%s-%s" (include "skein.fullname" .root) .component -}}
{{- end -}}

{{/* The CSI driver's name; csi/identity.ts reports the same one, so it is not a value. */}}
{{- define "skein.driverName" -}}zfs.csi.skein.io{{- end -}}

{{- define "skein.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: skein
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component's objects: skein.componentLabels (dict "root" $ "component" "operator"). */}}
{{- define "skein.componentLabels" -}}
{{ include "skein.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* What a component's pods are selected by; immutable in a Deployment, so never the version. */}}
{{- define "skein.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "skein.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Whether the cluster serves VolumeSnapshots: the snapshot class and the snapshotter sidecar need it. */}}
{{- define "skein.snapshotsServed" -}}
{{- if .Capabilities.APIVersions.Has "snapshot.storage.k8s.io/v1" -}}true{{- end -}}
{{- end -}}

{{/* Environment every Skein container gets: who and where it is, and how much to log. */}}
{{- define "skein.env" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: SKEIN_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* Hardening for every container that needs no privilege. */}}
{{- define "skein.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
