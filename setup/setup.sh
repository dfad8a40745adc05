#!/usr/bin/env bash
# One-shot, idempotent setup of the stack from the JSON data beside it: `setup.sh elasticsearch`, `setup.sh kibana`.
#
# `elasticsearch`: the kibana_system password, the roles and users in elasticsearch/roles and
# elasticsearch/users, the ILM policy, then the index template, then the two data streams.
# `kibana`: waits until Kibana's saved objects are available, then imports the saved objects.
# Every call is a PUT or an overwrite, so running it again converges on the same state.
set -euo pipefail
# Bash 5.2 would otherwise read "&" in a ${var//pattern/replacement} as "the matched text".
shopt -u patsub_replacement 2>/dev/null || true

BUNDLE_DIR=${EVENTTRAIL_BUNDLE_DIR:-/eventtrail}
ES_URL=${ELASTICSEARCH_URL:-http://elasticsearch:9200}
KIBANA_URL=${KIBANA_URL:-http://kibana:5601}
SETUP_TIMEOUT=${SETUP_TIMEOUT:-300}
# Attempts per call when the answer is a connection error, a 429 or a 5xx: Elasticsearch
# recovering its cluster state after the health wait, Kibana still migrating saved objects.
REQUEST_TRIES=${REQUEST_TRIES:-6}
RETRY_DELAY=${RETRY_DELAY:-2}

ILM_POLICY_NAME=eventtrail
INDEX_TEMPLATE_NAME=eventtrail
EVENT_DATASET=eventtrail
DEADLETTER_DATASET=eventtrail.deadletter
SAVED_OBJECTS_FILE=kibana/dashboards/eventtrail.ndjson

# The only ${NAME} placeholders the JSON data files may hold; anything else is a mistake.
RENDER_VARS=(LOGSTASH_WRITER_PASSWORD ELASTICSEARCH_API_PASSWORD KIBANA_ADMIN_PASSWORD EVENTTRAIL_RETENTION_DAYS)

WORK_DIR=
STATUS=000
RESPONSE=
JSON_STRING=

log() { printf 'setup: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Sets JSON_STRING to $1 escaped for use between double quotes in JSON.
json_string() {
  local s=$1
  if [[ $s == *[[:cntrl:]]* ]]; then
    die "a value holds a control character; use letters, digits and punctuation only"
  fi
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  JSON_STRING=$s
}

is_render_var() {
  local name
  for name in "${RENDER_VARS[@]}"; do
    [[ $name == "$1" ]] && return 0
  done
  return 1
}

# Prints file $1 with each ${NAME} replaced by the JSON-escaped value of that variable.
# Inserted values are never scanned again, so a password cannot smuggle in a placeholder.
render() {
  local file=$1 rest out='' match name value
  [[ -f $file ]] || die "$file does not exist"
  rest=$(<"$file")
  while [[ $rest =~ \$\{([A-Za-z_][A-Za-z0-9_]*)\} ]]; do
    match=${BASH_REMATCH[0]}
    name=${BASH_REMATCH[1]}
    is_render_var "$name" || die "$file: \${$name} is not a placeholder setup fills in"
    value=${!name:-}
    [[ -n $value ]] || die "$file: \${$name} is empty; set it in .env"
    json_string "$value"
    out+=${rest%%"$match"*}$JSON_STRING
    rest=${rest#*"$match"}
  done
  printf '%s\n' "$out$rest"
}

check_settings() {
  [[ -n ${ELASTIC_PASSWORD:-} ]] || die "ELASTIC_PASSWORD is not set"
  if [[ ! ${EVENTTRAIL_NAMESPACE:-} =~ ^[a-z0-9_]{1,64}$ ]]; then
    die "EVENTTRAIL_NAMESPACE must be 1-64 lowercase letters, digits or underscores"
  fi
  if [[ ! ${EVENTTRAIL_RETENTION_DAYS:-} =~ ^[1-9][0-9]{0,4}$ ]]; then
    die "EVENTTRAIL_RETENTION_DAYS must be a whole number of days, at least 1"
  fi
}

# Credentials go in a private curl config file, never on a command line that `ps` shows.
init_work_dir() {
  WORK_DIR=$(mktemp -d)
  chmod 700 "$WORK_DIR"
  trap 'rm -rf "$WORK_DIR"' EXIT
  json_string "$ELASTIC_PASSWORD"
  printf 'user = "elastic:%s"\n' "$JSON_STRING" >"$WORK_DIR/curl.conf"
}

# request METHOD URL [curl options...]: request_once, again after a transient failure (a
# connection error, 429 or 5xx), up to REQUEST_TRIES times, waiting RETRY_DELAY seconds and
# twice as long after each attempt. Every call setup makes is a PUT, an overwrite or a read,
# so sending one again is safe.
request() {
  local attempt=1 delay=$RETRY_DELAY
  until request_once "$@"; do
    [[ $STATUS == 000 || $STATUS == 429 || $STATUS == 5* ]] || return 1
    ((attempt < REQUEST_TRIES)) || return 1
    log "$1 $2: ${STATUS/#000/no answer}; trying again in ${delay}s ($attempt/$REQUEST_TRIES)"
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
  done
}

# request_once METHOD URL [curl options...]: sets STATUS and RESPONSE; succeeds on a 2xx answer.
request_once() {
  local method=$1 url=$2
  shift 2
  STATUS=000
  RESPONSE=
  if ! STATUS=$(curl -sS -K "$WORK_DIR/curl.conf" -X "$method" -o "$WORK_DIR/response" \
    -w '%{http_code}' "$@" "$url" 2>"$WORK_DIR/curl.err"); then
    STATUS=000
    RESPONSE=$(<"$WORK_DIR/curl.err")
    return 1
  fi
  RESPONSE=$(<"$WORK_DIR/response")
  [[ $STATUS == 2* ]]
}

# put_json PATH FILE: renders FILE and PUTs it to Elasticsearch.
put_json() {
  local path=$1 file=$2
  render "$file" >"$WORK_DIR/body.json" || exit 1
  request PUT "$ES_URL/$path" -H 'Content-Type: application/json' \
    --data-binary "@$WORK_DIR/body.json" || die "PUT $path failed ($STATUS): $RESPONSE"
  rm -f "$WORK_DIR/body.json"
  log "PUT $path"
}

wait_for_elasticsearch() {
  local deadline=$((SECONDS + SETUP_TIMEOUT)) rejected=0
  log "waiting for Elasticsearch at $ES_URL"
  until request_once GET "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=5s"; do
    if [[ $STATUS == 401 ]] && ((++rejected >= 5)); then
      die "Elasticsearch rejects the elastic password. Its data volume was created with another" \
        "ELASTIC_PASSWORD: put that one back in .env, or start afresh with 'docker compose down -v'."
    fi
    ((SECONDS < deadline)) || die "Elasticsearch not ready after ${SETUP_TIMEOUT}s ($STATUS): $RESPONSE"
    sleep 3
  done
}

set_kibana_system_password() {
  [[ -n ${KIBANA_SYSTEM_PASSWORD:-} ]] || die "KIBANA_SYSTEM_PASSWORD is not set"
  json_string "$KIBANA_SYSTEM_PASSWORD"
  printf '{"password": "%s"}\n' "$JSON_STRING" >"$WORK_DIR/body.json"
  request POST "$ES_URL/_security/user/kibana_system/_password" \
    -H 'Content-Type: application/json' --data-binary "@$WORK_DIR/body.json" ||
    die "setting the kibana_system password failed ($STATUS): $RESPONSE"
  rm -f "$WORK_DIR/body.json"
  log "set the kibana_system password"
}

# put_each KIND API_PATH: one PUT per elasticsearch/KIND/<name>.json, named after the file.
put_each() {
  local kind=$1 api=$2 file
  local files=("$BUNDLE_DIR/elasticsearch/$kind"/*.json)
  [[ -f ${files[0]} ]] || die "no JSON files in $BUNDLE_DIR/elasticsearch/$kind"
  for file in "${files[@]}"; do
    put_json "$api/$(basename "$file" .json)" "$file"
  done
}

ensure_data_stream() {
  local name=$1
  if request GET "$ES_URL/_data_stream/$name"; then
    log "data stream $name exists"
    return
  fi
  [[ $STATUS == 404 ]] || die "GET _data_stream/$name failed ($STATUS): $RESPONSE"
  if ! request PUT "$ES_URL/_data_stream/$name"; then
    # A retried PUT whose first answer was lost finds the stream already there.
    request GET "$ES_URL/_data_stream/$name" || die "creating $name failed ($STATUS): $RESPONSE"
  fi
  log "created data stream $name"
}

setup_elasticsearch() {
  check_settings
  init_work_dir
  wait_for_elasticsearch
  set_kibana_system_password
  # Roles before the users that name them.
  put_each roles _security/role
  put_each users _security/user
  # The policy before the template that names it, the template before any event arrives.
  put_json "_ilm/policy/$ILM_POLICY_NAME" "$BUNDLE_DIR/elasticsearch/ilm-policy.json"
  put_json "_index_template/$INDEX_TEMPLATE_NAME" "$BUNDLE_DIR/elasticsearch/index-template.json"
  # Created now so Kibana's data view matches from the start, even before the first event.
  ensure_data_stream "logs-$EVENT_DATASET-$EVENTTRAIL_NAMESPACE"
  ensure_data_stream "logs-$DEADLETTER_DATASET-$EVENTTRAIL_NAMESPACE"
  log "Elasticsearch is set up"
}

# Waits until Kibana's saved-objects service is available: that is what the import needs. The
# overall level is the worst of every plugin's and often stays "degraded" on a healthy stack
# (task manager), so it is not waited for.
wait_for_kibana() {
  local deadline=$((SECONDS + SETUP_TIMEOUT))
  local ready='"savedObjects":\{[^{}]*"level":"available"'
  log "waiting for Kibana's saved objects at $KIBANA_URL"
  until request_once GET "$KIBANA_URL/api/status" && [[ $RESPONSE =~ $ready ]]; do
    ((SECONDS < deadline)) || die "Kibana's saved objects not available after ${SETUP_TIMEOUT}s ($STATUS)"
    sleep 5
  done
}

import_saved_objects() {
  local file=$BUNDLE_DIR/$SAVED_OBJECTS_FILE
  [[ -s $file ]] || die "$file is missing or empty"
  request POST "$KIBANA_URL/api/saved_objects/_import?overwrite=true" \
    -H 'kbn-xsrf: true' --form "file=@$file" ||
    die "importing $SAVED_OBJECTS_FILE failed ($STATUS): $RESPONSE"
  [[ $RESPONSE == *'"success":true'* ]] || die "Kibana refused part of $SAVED_OBJECTS_FILE: $RESPONSE"
  log "imported $SAVED_OBJECTS_FILE"
}

setup_kibana() {
  [[ -n ${ELASTIC_PASSWORD:-} ]] || die "ELASTIC_PASSWORD is not set"
  init_work_dir
  wait_for_kibana
  import_saved_objects
  log "Kibana is set up"
}

main() {
  case ${1:-} in
    elasticsearch) setup_elasticsearch ;;
    kibana) setup_kibana ;;
    *) die "usage: setup.sh elasticsearch|kibana" ;;
  esac
}

# Sourcing the file (as the tests do) defines the functions without running anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
