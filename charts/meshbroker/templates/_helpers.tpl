{{/* Names, labels and the nats-server-format renderer shared by the templates. */}}

{{- define "meshbroker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "meshbroker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; "component" is edge, router, redis or test. */}}
{{- define "meshbroker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "meshbroker.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: meshbroker
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "meshbroker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshbroker.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "meshbroker.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "meshbroker.routerService" -}}{{ include "meshbroker.fullname" . }}-router{{- end -}}
{{- define "meshbroker.redisService" -}}{{ include "meshbroker.fullname" . }}-redis{{- end -}}

{{/* The Secret holding the cluster token, and its key. */}}
{{- define "meshbroker.tokenSecret" -}}
{{- .Values.cluster.auth.existingSecret | default (printf "%s-cluster" (include "meshbroker.fullname" .)) -}}
{{- end -}}
{{- define "meshbroker.tokenKey" -}}
{{- if .Values.cluster.auth.existingSecret }}{{ .Values.cluster.auth.existingSecretKey }}{{ else }}token{{ end -}}
{{- end -}}

{{/* Whether auth.conf exists (from values or existingSecret), and its Secret. */}}
{{- define "meshbroker.authEnabled" -}}
{{- $a := .Values.auth -}}
{{- if or $a.existingSecret $a.authorization $a.accounts $a.no_auth_user $a.system_account $a.operator.jwt .Values.config.websocket.authorization .Values.config.mqtt.authorization -}}true{{- end -}}
{{- end -}}
{{- define "meshbroker.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "meshbroker.fullname" .)) -}}
{{- end -}}

{{/*
A duration such as "30s", "2m" or "1m30s" in whole seconds (for terminationGracePeriodSeconds).
*/}}
{{- define "meshbroker.seconds" -}}
{{- $total := 0 -}}
{{- $d := toString . -}}
{{- if regexMatch "^[0-9]+$" $d -}}
{{- $total = atoi $d -}}
{{- else -}}
{{- if not (regexMatch "^([0-9]+(h|m|s|ms))+$" $d) -}}
{{- fail (printf "duration %q: write it as e.g. 30s, 2m or 1m30s" $d) -}}
{{- end -}}
{{- range regexFindAll "[0-9]+(h|ms|m|s)" $d -1 -}}
{{- $n := atoi (regexFind "^[0-9]+" .) -}}
{{- if hasSuffix "ms" . -}}{{- $total = add $total (div (add $n 999) 1000) -}}
{{- else if hasSuffix "h" . -}}{{- $total = add $total (mul $n 3600) -}}
{{- else if hasSuffix "m" . -}}{{- $total = add $total (mul $n 60) -}}
{{- else -}}{{- $total = add $total $n -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
nats-server format from a value: maps as { k: v, ... }, lists as [ ... ], strings quoted with Go's
%q (not toJson: it writes ">" as \u003e, an escape the config lexer refuses)
(a string starting with "$" stays bare: a variable, or the environment variable of that name),
whole numbers without Helm's float formatting (1000000, not 1e+06), booleans bare.
*/}}
{{- define "meshbroker.conf.value" -}}
{{- if kindIs "map" . -}}
{{- $parts := list -}}
{{- range $k, $v := . -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $parts = append $parts (printf "%s: %s" $k (include "meshbroker.conf.value" $v)) -}}
{{- end -}}
{{- end -}}
{ {{ join ", " $parts }} }
{{- else if kindIs "slice" . -}}
{{- $parts := list -}}
{{- range . }}{{ $parts = append $parts (include "meshbroker.conf.value" .) }}{{ end -}}
[{{ join ", " $parts }}]
{{- else if kindIs "string" . -}}
{{- if regexMatch "^\\$[A-Za-z_][A-Za-z0-9_]*$" . }}{{ . }}{{ else }}{{ printf "%q" . }}{{ end -}}
{{- else if kindIs "bool" . -}}
{{- . -}}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 (int64 .)) (float64 .) }}{{ int64 . }}{{ else }}{{ . }}{{ end -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/*
Top-level lines "key: value" of a map, skipping unset entries (nil, "", 0 where 0 means
"the default", empty lists and maps). Call with (dict "m" MAP "indent" N).
*/}}
{{- define "meshbroker.conf.entries" -}}
{{- range $k, $v := .m -}}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v "")) (and (or (kindIs "map" $v) (kindIs "slice" $v)) (empty $v)) (and (or (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v)) (eq (toString $v) "0"))) }}
{{ printf "%s: %s" $k (include "meshbroker.conf.value" $v) | indent $.indent }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The client TLS block (NATS, WebSocket and MQTT share the certificate). */}}
{{- define "meshbroker.clientTls" -}}
{{- $t := .Values.config.tls -}}
{{- $m := dict "cert_file" "/etc/meshbroker/tls/client/tls.crt" "key_file" "/etc/meshbroker/tls/client/tls.key" -}}
{{- if or $t.verify $t.verify_and_map }}{{ $_ := set $m "ca_file" "/etc/meshbroker/tls/client/ca.crt" }}{{ end -}}
{{- if $t.verify }}{{ $_ := set $m "verify" true }}{{ end -}}
{{- if $t.verify_and_map }}{{ $_ := set $m "verify_and_map" true }}{{ end -}}
{{- if $t.timeout }}{{ $_ := set $m "timeout" $t.timeout }}{{ end -}}
{{- toJson $m -}}
{{- end -}}

{{/* router { redis }: the URL from the environment (it may carry the password from a Secret),
or a Sentinel / Cluster block. */}}
{{- define "meshbroker.redisConf" -}}
{{- $r := .Values.redis -}}
{{- if or $r.bundled.enabled $r.url -}}
$MESHBROKER_REDIS_URL
{{- else if or $r.sentinel.hosts $r.cluster.nodes -}}
{{- $m := dict -}}
{{- if $r.sentinel.hosts -}}
{{- $_ := set $m "sentinels" $r.sentinel.hosts -}}
{{- $_ := set $m "name" (required "redis.sentinel.masterName is required with redis.sentinel.hosts" $r.sentinel.masterName) -}}
{{- else -}}
{{- $_ := set $m "cluster" $r.cluster.nodes -}}
{{- end -}}
{{- if $r.username }}{{ $_ := set $m "username" $r.username }}{{ end -}}
{{- if $r.existingSecret }}{{ $_ := set $m "password" "$MESHBROKER_REDIS_PASSWORD" }}{{ end -}}
{{- if $r.tls }}{{ $_ := set $m "tls" true }}{{ end -}}
{{- include "meshbroker.conf.value" $m -}}
{{- else -}}
{{- fail "redis: keep redis.bundled.enabled, or set redis.url, redis.sentinel.hosts or redis.cluster.nodes" -}}
{{- end -}}
{{- end -}}

{{/* The routers' Redis environment: the password from its Secret, the URL built with it. */}}
{{- define "meshbroker.redisEnv" -}}
{{- $r := .Values.redis -}}
{{- if $r.existingSecret }}
- name: MESHBROKER_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret }}
      key: {{ $r.existingSecretKey }}
{{- end }}
{{- if $r.bundled.enabled }}
- name: MESHBROKER_REDIS_URL
  value: "redis://{{ include "meshbroker.redisService" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:6379"
{{- else if $r.url }}
{{- if not (regexMatch "^rediss?://[^@/]+(/[0-9]+)?$" $r.url) }}
{{- fail (printf "redis.url %q: redis://host:port[/db] or rediss://..., with no user or password in it (use redis.username and redis.existingSecret)" $r.url) }}
{{- end }}
- name: MESHBROKER_REDIS_URL
  {{- $cred := "" }}
  {{- if $r.existingSecret }}{{ $cred = printf "%s:$$(MESHBROKER_REDIS_PASSWORD)@" $r.username }}{{ end }}
  value: {{ regexReplaceAll "^(rediss?://)" $r.url (printf "${1}%s" $cred) | quote }}
{{- end }}
{{- end -}}

{{/* Pod-level pieces shared by edges and routers. */}}
{{- define "meshbroker.podEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
- name: MESHBROKER_CLUSTER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "meshbroker.tokenSecret" . }}
      key: {{ include "meshbroker.tokenKey" . }}
{{- end -}}

{{- define "meshbroker.probe" -}}
httpGet:
  path: /healthz
  port: monitor
{{ toYaml . }}
{{- end -}}

{{/* checksum annotations: a change of config, auth or token rolls the pods. */}}
{{- define "meshbroker.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- /* from the values, not the rendered Secret: a generated token would change it on every render */}}
checksum/secrets: {{ list .Values.auth .Values.cluster .Values.config.tls .Values.config.websocket.authorization .Values.config.mqtt.authorization .Values.redis.existingSecret | toJson | sha256sum }}
{{- end -}}

{{/* Volumes of edges and routers: the config, the auth Secret (edges), TLS, and /data. */}}
{{- define "meshbroker.volumeMounts" -}}
- {name: config, mountPath: /etc/meshbroker/config, readOnly: true}
{{- if and .auth (include "meshbroker.authEnabled" .ctx) }}
- {name: auth, mountPath: /etc/meshbroker/auth, readOnly: true}
{{- end }}
{{- if .clientTls }}
- {name: tls-client, mountPath: /etc/meshbroker/tls/client, readOnly: true}
{{- end }}
{{- if .ctx.Values.cluster.tls.enabled }}
- {name: tls-cluster, mountPath: /etc/meshbroker/tls/cluster, readOnly: true}
{{- end }}
- {name: data, mountPath: /data}
{{- with .extraMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "meshbroker.volumes" -}}
- name: config
  configMap:
    name: {{ include "meshbroker.fullname" .ctx }}-config
{{- if and .auth (include "meshbroker.authEnabled" .ctx) }}
- name: auth
  secret:
    secretName: {{ include "meshbroker.authSecret" .ctx }}
{{- end }}
{{- if .clientTls }}
- name: tls-client
  secret:
    secretName: {{ required "config.tls.secretName is required with config.tls.enabled" .ctx.Values.config.tls.secretName }}
{{- end }}
{{- if .ctx.Values.cluster.tls.enabled }}
- name: tls-cluster
  secret:
    secretName: {{ required "cluster.tls.secretName is required with cluster.tls.enabled" .ctx.Values.cluster.tls.secretName }}
{{- end }}
- name: data
  emptyDir: {}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The edge and router pods of this release, for a ServiceMonitor's or PodMonitor's spec. */}}
{{- define "meshbroker.scrapeSelector" -}}
selector:
  matchExpressions:
    - {key: app.kubernetes.io/name, operator: In, values: [{{ include "meshbroker.name" . | quote }}]}
    - {key: app.kubernetes.io/instance, operator: In, values: [{{ .Release.Name | quote }}]}
    - {key: app.kubernetes.io/component, operator: In, values: [edge, router]}
namespaceSelector:
  matchNames: [{{ .Release.Namespace | quote }}]
{{- end -}}
