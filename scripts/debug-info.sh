#!/usr/bin/env bash
# Collects what a bug report about the CodeLab Platform needs, as one report on stdout to paste into
# an issue (docs/troubleshooting.md, "Collecting debug information"):
#
#   npm run --silent debug-info > debug-info.txt        # or: bash scripts/debug-info.sh
#
# It finds what runs here by itself: the Compose stack of docker-compose.yml (any of its containers,
# running or not; COMPOSE_PROJECT_NAME / -p, COMPOSE_FILE / -f and DOCKER_HOST are honoured) and/or
# the platform `npm start` runs (the services answering /health on 127.0.0.1, at GATEWAY__PORT,
# AGENT_RUNTIME__PORT, LLM_PROXY__PORT, AUTH_SERVICE__PORT or 8000…8003, and the website at WEB__PORT
# or 3000). Every section starts with
# `=== Title ===`; a section that cannot run says why in one line, and the script goes on. It exits 0
# (2 for a bad option).
#
# It never prints a secret. Settings are shown by name; the value of every variable whose name
# contains KEY, SECRET, PASSWORD, TOKEN, MASTER or PRIVATE (except *_PATH, *_PATHS and *_FILE, which
# name files) is shown as `<set, N chars>`, and the password of any URL as `<redacted>`. The internal
# key goes to curl on its standard input or to node in its environment (in Compose, the runtime
# container reads its own), never on a command line; Redis passwords go to redis-cli as REDISCLI_AUTH.
# And everything printed, logs included, goes through a filter that removes the values of those
# variables, the kept internal key and admin password, URL passwords, bearer/basic credentials,
# X-Internal-Auth values, JWTs, `access_token=`/`password=`-style parameters, JSON secret fields and
# private key blocks.
# shellcheck disable=SC2016 # single quotes on purpose: awk programs, commands expanded inside containers, `names` in messages
set -u

usage() {
  cat <<'EOF'
Usage: scripts/debug-info.sh [options]        (npm run --silent debug-info -- [options])

Prints a diagnostic report of the CodeLab Platform on stdout, without any secret, to paste into an
issue. It looks for the Compose stack of docker-compose.yml and for the platform `npm start` runs,
and reports on each it finds.

Options:
  --mode MODE            auto (default): whatever is found; compose: the Compose stack only;
                         local: the `npm start` platform only
  -p, --project-name N   Compose project name (default: COMPOSE_PROJECT_NAME, else Compose's own)
  -f, --file FILE        Compose file, repeatable (default: COMPOSE_FILE, else ./docker-compose.yml,
                         else the repository's)
  --nginx-url URL        where nginx answers from this host (default: what `compose port nginx 80` says)
  --tail N               log lines per Compose service (default 50)
  -h, --help             this help

Environment honoured: COMPOSE_PROJECT_NAME, COMPOSE_FILE, DOCKER_HOST (Compose); GATEWAY__PORT,
AGENT_RUNTIME__PORT, LLM_PROXY__PORT, AUTH_SERVICE__PORT, WEB__PORT and <P>__HOST (npm start; default
127.0.0.1:8000…8003, 3000); CODELAB_DATA_DIR (default: the repository's data/: internal-api-key, pg.lock);
<P>__INTERNAL_API_KEY (wins over data/internal-api-key, as for npm start); AGENT_RUNTIME__REDIS_URL,
AUTH_SERVICE__REDIS_URL, AUTH_SERVICE__DB_URL, AGENT_RUNTIME__DB_URL (checked when set).
Uses curl, jq, docker, docker compose (or docker-compose), pg_isready and redis-cli when present;
node stands in for curl and jq.
EOF
}

bad_option() {
  printf 'debug-info: %s (see --help)\n' "$1" >&2
  exit 2
}

MODE=auto
TAIL=50
PROJECT=''
NGINX_URL=''
FILES=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --mode) [ $# -ge 2 ] || bad_option "--mode needs a value"; MODE=$2; shift 2 ;;
    --mode=*) MODE=${1#*=}; shift ;;
    -p | --project-name) [ $# -ge 2 ] || bad_option "$1 needs a value"; PROJECT=$2; shift 2 ;;
    --project-name=*) PROJECT=${1#*=}; shift ;;
    -f | --file) [ $# -ge 2 ] || bad_option "$1 needs a value"; FILES+=("$2"); shift 2 ;;
    --file=*) FILES+=("${1#*=}"); shift ;;
    --nginx-url) [ $# -ge 2 ] || bad_option "--nginx-url needs a value"; NGINX_URL=$2; shift 2 ;;
    --nginx-url=*) NGINX_URL=${1#*=}; shift ;;
    --tail) [ $# -ge 2 ] || bad_option "--tail needs a value"; TAIL=$2; shift 2 ;;
    --tail=*) TAIL=${1#*=}; shift ;;
    *) bad_option "unknown option: $1" ;;
  esac
done
case $MODE in auto | compose | local) ;; *) bad_option "--mode is auto, compose or local, not '$MODE'" ;; esac
case $TAIL in '' | *[!0-9]*) bad_option "--tail is a number of lines, not '$TAIL'" ;; esac

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_DIR=${CODELAB_DATA_DIR:-$REPO_ROOT/data}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/codelab-debug-info.XXXXXX") || { echo 'debug-info: cannot create a temporary directory' >&2; exit 1; }
trap 'rm -rf "$TMP"' EXIT
: >"$TMP/problems"

# ---- helpers ----------------------------------------------------------------------------------

have() { command -v "$1" >/dev/null 2>&1; }
section() { printf '\n=== %s ===\n' "$1"; }
# A section (or a part of one) that cannot run: one line saying why.
skip() { printf '(not run: %s)\n' "$*"; }
problem() { printf '%s\n' "$*" >>"$TMP/problems"; }
# Runs a command with a time limit when `timeout` exists (a hung daemon must not hang the report).
limit() {
  local seconds=$1
  shift
  if have timeout; then timeout "$seconds" "$@"; else "$@"; fi
}

upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }
# A variable holding a secret, by its name (file paths excepted: *_PATH, *_PATHS, *_FILE).
is_secret_name() {
  local name
  name=$(upper "$1")
  case $name in *_PATH | *_PATHS | *_FILE) return 1 ;; esac
  case $name in *KEY* | *SECRET* | *PASSWORD* | *TOKEN* | *MASTER* | *PRIVATE*) return 0 ;; esac
  return 1
}
# The password part of a URL, when it has one (scheme://user:password@host…).
url_password() {
  printf '%s\n' "$1" | sed -nE 's%^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:([^/@]+)@.*%\1%p' | head -n 1
}
mask_url() {
  printf '%s' "$1" | sed -E 's%([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:[:space:]]*):[^/@[:space:]]+@%\1:<redacted>@%g'
}
# NAME=value as shown in the report.
show_setting() {
  local name=$1 value=$2
  if is_secret_name "$name"; then
    printf '%s=<set, %d chars>\n' "$name" "${#value}"
  else
    value=$(mask_url "$value")
    printf '%s=%s\n' "$name" "${value//$'\n'/\\n}"
  fi
}

# The settings a report shows: the services' (<P>__*) and the few shared ones.
is_reported_name() {
  case $1 in
    *__*) return 0 ;;
    CODELAB_* | LOKI_URL | OTEL_* | NODE_ENV | COMPOSE_PROJECT_NAME | COMPOSE_FILE | COMPOSE_PROFILES | DOCKER_HOST | DOCKER_CONTEXT) return 0 ;;
    POSTGRES_USER | POSTGRES_DB | POSTGRES_PASSWORD | NGINX_* | REDIS_IMAGE | POSTGRES_IMAGE) return 0 ;;
  esac
  return 1
}

# An environment, one variable a line: "NAME=value" quoted as Go's %q quotes it (`docker inspect` with
# INSPECT_ENV: a value's newlines stay inside its line), or NAME=value as is (a .env file) → the
# reported ones as show_setting shows them (mode show), or the secret values (mode secrets). Blank
# values count as unset.
ENV_AWK='
function secret(n,  u) {
  u = toupper(n)
  if (u ~ /_(PATH|PATHS|FILE)$/) return 0
  return u ~ /KEY|SECRET|PASSWORD|TOKEN|MASTER|PRIVATE/
}
function reported(n) {
  return n ~ /__/ || n ~ /^(CODELAB_|OTEL_|NGINX_)/ || n ~ /^(LOKI_URL|NODE_ENV|POSTGRES_USER|POSTGRES_DB|POSTGRES_PASSWORD|REDIS_IMAGE|POSTGRES_IMAGE)$/
}
function flush(  v) {
  if (name == "" || value == "") return
  if (mode == "secrets") {
    if (secret(name)) print value
    else if (match(value, /:\/\/[^\/?#@:]*:[^\/@]+@/)) { v = substr(value, RSTART, RLENGTH); sub(/^:\/\/[^\/?#@:]*:/, "", v); sub(/@$/, "", v); print v }
  } else if (reported(name)) {
    if (secret(name)) printf "%s%s=<set, %d chars>\n", indent, name, length(value)
    else { v = value; gsub(/\n/, "\\n", v); print indent name "=" v }
  }
}
function unquote(q,  out, i, c, d) {
  out = ""
  for (i = 1; i <= length(q); i++) {
    c = substr(q, i, 1)
    if (c != "\\") { out = out c; continue }
    d = substr(q, ++i, 1)
    if (d == "n") out = out "\n"; else if (d == "t") out = out "\t"; else if (d == "r") out = out "\r"; else out = out d
  }
  return out
}
{
  line = $0
  if (line ~ /^".*"$/) line = unquote(substr(line, 2, length(line) - 2))
  i = index(line, "=")
  if (line !~ /^[A-Za-z_][A-Za-z0-9_]*=/) next
  name = substr(line, 1, i - 1); value = substr(line, i + 1)
  flush()
}
'
env_lines() { awk -v mode=show -v indent="${1-}" "$ENV_AWK" | sed -E 's%([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:[:space:]]*):[^/@[:space:]]+@%\1:<redacted>@%g'; }
env_secrets() { awk -v mode=secrets "$ENV_AWK"; }
INSPECT_ENV='{{range .Config.Env}}{{printf "%q\n" .}}{{end}}'

# Everything printed goes through this: known secret values and anything shaped like a credential.
cat >"$TMP/redact.sed" <<'EOF'
s%([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:[:space:]"'<>]*):[^/@[:space:]"'<>]+@%\1:<redacted>@%g
s%([?&;[:space:]"'(]|^)((access|refresh|id)_token|client_secret|[Pp]assword|passwd|api_key|apikey|token|secret)=[^&[:space:]"',;)]+%\1\2=<redacted>%g
s%([Bb]earer|[Bb]asic)([[:space:]]+)[A-Za-z0-9._~+/=-]{6,}%\1\2<redacted>%g
s%([Xx]-[Ii]nternal-[Aa]uth["']?[[:space:]]*[:=][[:space:]]*["']?)[^"'[:space:],}]+%\1<redacted>%g
s%("[A-Za-z_]*([Pp]assword|[Pp]asswd|[Ss]ecret|[Tt]oken|api_key|apiKey|[Aa]uthorization|master_key|masterKey|internal_api_key|internalApiKey|private_key|privateKey)"[[:space:]]*:[[:space:]]*")[^"]*"%\1<redacted>"%g
s%eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*%<redacted jwt>%g
EOF
REDACT_AWK='
BEGIN {
  n = split(ENVIRON["DEBUG_INFO_SECRETS"], raw, "\n")
  m = 0
  for (i = 1; i <= n; i++) {
    s = raw[i]
    sub(/\r$/, "", s)
    # short values, numbers and booleans are not secrets worth a blind replace (lifetimes, flags)
    if (length(s) < 6 || s ~ /^[0-9.]+$/ || s ~ /^(true|false|yes|no)$/) continue
    secrets[++m] = s
  }
  # longest first: a secret that contains another is removed whole
  for (i = 2; i <= m; i++) { s = secrets[i]; j = i - 1; while (j >= 1 && length(secrets[j]) < length(s)) { secrets[j + 1] = secrets[j]; j-- } secrets[j + 1] = s }
  inkey = 0
}
{
  line = $0
  if (inkey) {
    if (line ~ /-----END [A-Z ]*PRIVATE KEY-----/) { inkey = 0; next }
    # a line of the key: its last word is base64 (long, or with digits or +/=), after any log prefix
    t = line
    sub(/[[:space:]]+$/, "", t)
    sub(/.*[[:space:]]/, "", t)
    if (line ~ /^[[:space:]]*$/ || (t ~ /^[A-Za-z0-9+\/=]+$/ && (length(t) >= 40 || (length(t) >= 4 && t ~ /[0-9+\/=]/)))) next
    inkey = 0
  }
  if (line ~ /-----BEGIN [A-Z ]*PRIVATE KEY-----/) {
    if (line !~ /-----END [A-Z ]*PRIVATE KEY-----/) inkey = 1
    sub(/-----BEGIN [A-Z ]*PRIVATE KEY-----.*/, "<private key redacted>", line)
  }
  for (i = 1; i <= m; i++) {
    s = secrets[i]
    while ((p = index(line, s)) > 0) line = substr(line, 1, p - 1) "<redacted>" substr(line, p + length(s))
  }
  print line
  fflush()
}
'

# JSON from stdin → the value at a path like .computed, compact (`raw` as second argument: strings
# unquoted). jq when present (DEBUG_INFO_NO_JQ=1 ignores it), else node.
json_get() {
  if [ -z "${DEBUG_INFO_NO_JQ-}" ] && have jq; then
    if [ "${2-}" = raw ]; then jq -r "$1" 2>&1 || true; else jq -c "$1" 2>&1 || true; fi
  elif have node; then
    DI_PATH=$1 DI_RAW=${2-} node -e '
      let s = "";
      process.stdin.on("data", (d) => (s += d)).on("end", () => {
        try {
          const v = process.env.DI_PATH.split(".").filter(Boolean).reduce((o, k) => (o == null ? undefined : o[k]), JSON.parse(s));
          console.log(v === undefined ? "null" : process.env.DI_RAW && typeof v === "string" ? v : JSON.stringify(v));
        } catch (e) { console.log("not JSON: " + e.message); }
      });'
  else
    echo '(needs jq or node to read the JSON)'
  fi
}

# GET url → "STATUS BODY" (one line for JSON bodies), or "unreachable: why" (status 1). A header
# whose value is secret is sent as `Name: $HEADER_VALUE`, never on a command line.
HEADER_NAME=''
HEADER_VALUE=''
http_get() {
  local url=$1 out rc
  if have curl; then
    if [ -n "$HEADER_NAME" ]; then
      out=$(printf '%s: %s\n' "$HEADER_NAME" "$HEADER_VALUE" | curl -sS --max-time 5 -H @- -w '\n%{http_code}' "$url" 2>&1)
    else
      out=$(curl -sS --max-time 5 -w '\n%{http_code}' "$url" 2>&1)
    fi
    rc=$?
    if [ $rc -ne 0 ]; then
      printf 'unreachable: %s\n' "$(printf '%s\n' "$out" | grep -m1 '^curl:' || echo "curl exit $rc")"
      return 1
    fi
    local status=${out##*$'\n'} body=${out%$'\n'*}
    while [ "${body%$'\n'}" != "$body" ]; do body=${body%$'\n'}; done
    printf '%s %s\n' "$status" "${body//$'\n'/ }"
  elif have node; then
    DI_URL=$url DI_HN=$HEADER_NAME DI_HV=$HEADER_VALUE node -e '
      const h = process.env.DI_HN ? { [process.env.DI_HN]: process.env.DI_HV } : {};
      fetch(process.env.DI_URL, { headers: h, signal: AbortSignal.timeout(5000) }).then(
        async (r) => console.log(r.status + " " + (await r.text()).trimEnd().replace(/\n/g, " ")),
        (e) => { console.log("unreachable: " + (e.cause?.code ?? e.cause?.message ?? e.message)); process.exitCode = 1; });'
  else
    echo 'unreachable: neither curl nor node is installed'
    return 1
  fi
}

# ---- what runs here -----------------------------------------------------------------------------

# The Compose command: `docker compose` (v2) or `docker-compose` (v1), with -p/-f as given.
COMPOSE=()
COMPOSE_WHY=''
compose_dir() {
  local first=''
  if [ ${#FILES[@]} -gt 0 ]; then first=${FILES[0]}
  elif [ -n "${COMPOSE_FILE-}" ]; then first=${COMPOSE_FILE%%"${COMPOSE_PATH_SEPARATOR:-:}"*}
  fi
  if [ -n "$first" ]; then (cd "$(dirname "$first")" 2>/dev/null && pwd) || pwd
  elif [ -f docker-compose.yml ] || [ -f compose.yaml ] || [ -f docker-compose.yaml ] || [ -f compose.yml ]; then pwd
  else printf '%s\n' "$REPO_ROOT"
  fi
}
if [ "$MODE" != local ]; then
  if have docker && limit 20 docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
  elif have docker-compose; then COMPOSE=(docker-compose)
  else COMPOSE_WHY='neither `docker compose` nor `docker-compose` is installed'
  fi
  if [ ${#COMPOSE[@]} -gt 0 ]; then
    [ -n "$PROJECT" ] && COMPOSE+=(-p "$PROJECT")
    for f in ${FILES[@]+"${FILES[@]}"}; do COMPOSE+=(-f "$f"); done
    if [ ${#FILES[@]} -eq 0 ] && [ -z "${COMPOSE_FILE-}" ] && [ "$(compose_dir)" = "$REPO_ROOT" ] && [ "$PWD" != "$REPO_ROOT" ]; then
      COMPOSE+=(-f "$REPO_ROOT/docker-compose.yml")
    fi
  fi
fi
# Stand-ins for the Compose file's required variables (${VAR:?…}) when neither this shell nor .env
# sets them: the commands run here (ps, logs, images, port, config --services) never use their values.
DC_ENV=()
dc() { limit 60 env ${DC_ENV[@]+"${DC_ENV[@]}"} "${COMPOSE[@]}" "$@"; }
compose_files() {
  if [ ${#FILES[@]} -gt 0 ]; then printf '%s\n' "${FILES[@]}"
  elif [ -n "${COMPOSE_FILE-}" ]; then printf '%s\n' "$COMPOSE_FILE" | tr "${COMPOSE_PATH_SEPARATOR:-:}" '\n'
  else printf '%s\n' "$(compose_dir)/docker-compose.yml"
  fi
}
# One line of a Compose error (v1 prints the whole environment mapping of the service: left out).
first_error() { grep -v '^[[:space:]]*$' | tail -n 1 | sed -E 's/interpolating \{.*\} in service/interpolating … in service/' | cut -c 1-400; }

# Containers of the stack, running or not (a crash loop is what one debugs).
CONTAINERS=''
COMPOSE_NOTE=''
if [ ${#COMPOSE[@]} -gt 0 ] && [ -z "$COMPOSE_WHY" ]; then
  out=$(dc ps -a -q 2>&1)
  rc=$?
  if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -qiE 'missing (a )?(mandatory )?value|required variable'; then
    while IFS= read -r f; do
      [ -r "$f" ] || continue
      while IFS= read -r v; do
        [ -n "${!v-}" ] || DC_ENV+=("$v=stand-in-for-debug-info")
      done < <(grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*:\?' "$f" | sed -E 's/^\$\{//; s/:\?$//' | sort -u)
    done < <(compose_files)
    COMPOSE_NOTE="(the Compose file's required variables are set neither here nor in .env: read with stand-in values; the first error was: $(printf '%s\n' "$out" | first_error))"
    out=$(dc ps -a -q 2>&1)
    rc=$?
  fi
  # a Compose without `ps -a`
  if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -qiE 'no such option|unknown (shorthand )?flag'; then
    out=$(dc ps -q 2>&1)
    rc=$?
  fi
  if [ $rc -eq 0 ]; then
    CONTAINERS=$(printf '%s\n' "$out" | grep -E '^[0-9a-f]{12,}$' || true)
    [ -n "$CONTAINERS" ] || COMPOSE_WHY="no container of the stack exists (\`${COMPOSE[*]} ps -a\` lists none: the stack is not up for this project name and file)"
  else
    COMPOSE_WHY="\`${COMPOSE[*]} ps\` failed: $(printf '%s\n' "$out" | first_error)"
    if printf '%s\n' "$out" | grep -qiE 'daemon running|connect to (the )?docker daemon|fetching server API version'; then
      COMPOSE_WHY="$COMPOSE_WHY (no Docker daemon answers at ${DOCKER_HOST:-the default socket}: is Docker running, is DOCKER_HOST right?)"
    fi
  fi
fi
[ "$MODE" = local ] && COMPOSE_WHY='--mode local'

# npm start: the services and the website on their ports (<P>__HOST / <P>__PORT as the launcher reads them).
LOCAL_SERVICES='gateway:GATEWAY:8000 runtime:AGENT_RUNTIME:8001 llm-proxy:LLM_PROXY:8002 auth:AUTH_SERVICE:8003 web:WEB:3000'
local_url() {
  local prefix=$1 default_port=$2 host port hv pv
  hv="${prefix}__HOST"
  pv="${prefix}__PORT"
  host=${!hv-}
  port=${!pv-}
  case $host in '' | 0.0.0.0) host=127.0.0.1 ;; :: | '[::]') host='[::1]' ;; *:*) host="[$host]" ;; esac
  printf 'http://%s:%s\n' "$host" "${port:-$default_port}"
}
LOCAL_UP=''
LOCAL_WHY=''
if [ "$MODE" != compose ]; then
  for entry in $LOCAL_SERVICES; do
    IFS=: read -r name prefix port <<<"$entry"
    if http_get "$(local_url "$prefix" "$port")/health" >/dev/null 2>&1; then LOCAL_UP="$LOCAL_UP $name"; fi
  done
  [ -n "$LOCAL_UP" ] || LOCAL_WHY="nothing answers /health at $(for e in $LOCAL_SERVICES; do IFS=: read -r _ p d <<<"$e"; printf '%s ' "$(local_url "$p" "$d")"; done)(npm start is not running here, or on other ports: set GATEWAY__PORT etc. as for npm start)"
else
  LOCAL_WHY='--mode compose'
fi

# The internal key the runtime takes, as the launcher picks it: a configured <P>__INTERNAL_API_KEY,
# else the kept file. Read here, sent by curl/node only, never printed.
LOCAL_KEY=''
LOCAL_KEY_FROM=''
for v in AGENT_RUNTIME__INTERNAL_API_KEY AUTH_SERVICE__INTERNAL_API_KEY LLM_PROXY__INTERNAL_API_KEY GATEWAY__INTERNAL_API_KEY; do
  if [ -n "${!v-}" ]; then LOCAL_KEY=${!v}; LOCAL_KEY_FROM=$v; break; fi
done
if [ -z "$LOCAL_KEY" ] && [ -r "$DATA_DIR/internal-api-key" ]; then
  LOCAL_KEY=$(head -n 1 "$DATA_DIR/internal-api-key" | tr -d '[:space:]')
  LOCAL_KEY_FROM="$DATA_DIR/internal-api-key"
fi

# Every secret value this script could come across, for the output filter (never printed).
SECRETS=$(
  for name in $(compgen -e); do
    value=${!name-}
    [ -n "$value" ] || continue
    if is_secret_name "$name"; then printf '%s\n' "$value"; fi
    url_password "$value"
  done
  for f in "$DATA_DIR/internal-api-key" "$DATA_DIR/auth/admin-password"; do
    [ -r "$f" ] && head -c 4096 "$f" && echo
  done
  if [ -n "$CONTAINERS" ]; then
    envfile="$(compose_dir)/.env"
    # KEY=value lines, `export` and surrounding quotes removed
    [ -r "$envfile" ] && sed -E -e 's/^[[:space:]]*(export[[:space:]]+)?//' -e '/^#/d' \
      -e "s/^([A-Za-z_][A-Za-z0-9_]*)=([\"'])(.*)\\2[[:space:]]*\$/\\1=\\3/" "$envfile" | env_secrets
    for id in $CONTAINERS; do
      limit 20 docker inspect --format "$INSPECT_ENV" "$id" 2>/dev/null | env_secrets
    done
  fi
)

# ---- the report -----------------------------------------------------------------------------------

report_versions() {
  section 'Versions'
  printf 'date: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  printf 'uname -a: %s\n' "$(uname -a)"
  if have node; then printf 'node -v: %s (%s)\n' "$(node -v 2>&1)" "$(command -v node)"; else echo 'node: not installed on this host'; fi
  have npm && printf 'npm -v: %s\n' "$(npm -v 2>/dev/null)"
  if [ -f "$REPO_ROOT/package.json" ]; then
    printf 'checkout: %s, package.json version %s' "$REPO_ROOT" "$(sed -nE 's/^  "version": "([^"]*)".*/\1/p' "$REPO_ROOT/package.json" | head -n 1)"
    if have git && git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
      printf ', git %s (%s files changed)' "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null)" "$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null | wc -l | tr -d ' ')"
    fi
    echo
  fi
  echo '--- docker version'
  if have docker; then limit 20 docker version 2>&1; else echo 'docker: not installed'; fi
  echo '--- compose version'
  if have docker && limit 20 docker compose version >/dev/null 2>&1; then limit 20 docker compose version 2>&1
  elif have docker-compose; then limit 20 docker-compose version 2>&1
  else echo 'neither `docker compose` nor `docker-compose` is installed'
  fi
  echo '--- the services (/health .version)'
  if [ -z "$COMPOSE_WHY" ]; then
    for entry in $LOCAL_SERVICES; do
      IFS=: read -r name prefix port <<<"$entry"
      for id in $(service_containers "$name"); do
        res=$(compose_health "$id" "$prefix" "$port" | sed -n 's%^/health %%p' | head -n 1)
        case $res in
          200\ *) printf 'compose %-9s %s (%s)\n' "$name" "$(printf '%s' "${res#* }" | json_get .version raw)" "$(container_name "$id")" ;;
          *) printf 'compose %-9s /health: %s (%s)\n' "$name" "${res:-no answer}" "$(container_name "$id")" ;;
        esac
      done
    done
  fi
  if [ -z "$LOCAL_WHY" ]; then
    for entry in $LOCAL_SERVICES; do
      IFS=: read -r name prefix port <<<"$entry"
      res=$(http_get "$(local_url "$prefix" "$port")/health")
      printf 'npm start %-9s %s\n' "$name" "$(printf '%s' "${res#* }" | json_get .version raw)"
    done
  fi
  [ -n "$COMPOSE_WHY" ] && [ -n "$LOCAL_WHY" ] && echo 'no running platform found (see the Compose and npm start sections)'
  return 0
}

report_configuration() {
  section 'Configuration (this shell: settings by name, secrets hidden)'
  local name found=''
  for name in $(compgen -e | sort); do
    is_reported_name "$name" || continue
    [ -n "${!name-}" ] || continue
    show_setting "$name" "${!name}"
    found=1
  done
  [ -n "$found" ] || echo '(no <P>__* setting, CODELAB_*, OTEL_*, COMPOSE_* or DOCKER_HOST is set in this environment: defaults apply)'
}

# ---- Compose

# /health and /ready from inside a container (the images have node and no curl; the port is the
# container's own setting), once per container: the Versions section and the health section share it.
compose_health() {
  local id=$1 prefix=$2 port=$3 cache="$TMP/health-$1" js
  if [ ! -f "$cache" ]; then
    js="(async () => { const port = process.env.${prefix}__PORT || ${port}; for (const p of ['/health', '/ready']) { try { const r = await fetch('http://127.0.0.1:' + port + p, { signal: AbortSignal.timeout(5000) }); console.log(p, r.status, (await r.text()).replace(/\\n/g, ' ')); } catch (e) { console.log(p, 'unreachable:', e.cause?.code ?? e.message); } } })()"
    limit 20 docker exec "$id" node -e "$js" >"$cache" 2>&1
  fi
  cat "$cache"
}
container_name() { limit 20 docker inspect --format '{{.Name}}' "$1" 2>/dev/null | sed 's%^/%%'; }
service_containers() { dc ps -q "$1" 2>/dev/null | grep -E '^[0-9a-f]{12,}$'; }

report_compose() {
  if [ -n "$COMPOSE_WHY" ]; then
    section 'Compose: stack'
    skip "$COMPOSE_WHY"
    return 0
  fi
  local id name services service prefix port js out status body ids
  section "Compose: stack (${COMPOSE[*]} ps)"
  printf 'project: %s, files: %s, DOCKER_HOST: %s\n' "${PROJECT:-${COMPOSE_PROJECT_NAME:-(Compose default: the directory name)}}" \
    "${FILES[*]:-${COMPOSE_FILE:-docker-compose.yml}}" "${DOCKER_HOST:-(default)}"
  [ -n "$COMPOSE_NOTE" ] && printf '%s\n' "$COMPOSE_NOTE"
  dc ps -a 2>&1 || dc ps 2>&1

  section 'Compose: containers (state, health, restarts, exit code, OOM kill)'
  for id in $CONTAINERS; do
    out=$(limit 20 docker inspect --format '{{.Name}} state={{.State.Status}} health={{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} restarts={{.RestartCount}} exit={{.State.ExitCode}} oom_killed={{.State.OOMKilled}} started={{.State.StartedAt}} image={{.Config.Image}}' "$id" 2>&1)
    out=${out#/}
    printf '%s\n' "$out"
    case $out in
      *'oom_killed=true'*) problem "container ${out%% *} was killed for lack of memory (OOM)" ;;
    esac
    case $out in *'state=restarting'* | *'state=exited'* | *'health=unhealthy'*) problem "container $(printf '%s' "$out" | cut -d' ' -f1-3)" ;; esac
    # why its health check fails: Docker keeps the last five results (time, exit code, output)
    case $out in
      *'health=unhealthy'* | *'health=starting'*)
        limit 20 docker inspect --format '{{range .State.Health.Log}}  health check {{.Start.Format "15:04:05.000"}}–{{.End.Format "15:04:05.000"}} exit={{.ExitCode}} {{printf "%.200q" .Output}}{{println}}{{end}}' "$id" 2>&1
        ;;
    esac
    restarts=$(printf '%s\n' "$out" | sed -nE 's/.* restarts=([0-9]+) .*/\1/p')
    [ "${restarts:-0}" -gt 0 ] 2>/dev/null && problem "container ${out%% *} restarted ${restarts} times (see its logs below)"
  done

  section 'Compose: services (config --services)'
  services=$(dc config --services 2>&1) || { printf '%s\n' "$services"; services=''; }
  [ -n "$services" ] && printf '%s\n' "$services"

  section 'Compose: images'
  dc images 2>&1 || skip '`images` failed (output above)'

  section 'Compose: resource usage (docker stats --no-stream)'
  # shellcheck disable=SC2086 # one argument per container id
  limit 30 docker stats --no-stream --format 'table {{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}' $CONTAINERS 2>&1

  section 'Compose: health and readiness (/health and /ready inside each container)'
  for entry in $LOCAL_SERVICES; do
    IFS=: read -r service prefix port <<<"$entry"
    ids=$(service_containers "$service")
    if [ -z "$ids" ]; then echo "$service: no running container"; problem "$service: no running container"; continue; fi
    for id in $ids; do
      name=$(container_name "$id")
      out=$(compose_health "$id" "$prefix" "$port")
      printf '%s\n' "$out" | sed "s%^%${name:-$service} %"
      case $out in *'/ready 200 '*) ;; *) problem "$service (${name:-$id}) is not ready: $(printf '%s\n' "$out" | grep '^/ready' | head -n 1)" ;; esac
    done
  done

  section 'Compose: through nginx (/nginx-health, /gateway-health, /auth-health, /web-health)'
  ids=$(service_containers nginx)
  local base=$NGINX_URL
  if [ -z "$base" ] && [ -n "$ids" ]; then
    out=$(dc port nginx 80 2>/dev/null | tail -n 1)
    case $out in
      0.0.0.0:* | '') base=${out:+http://127.0.0.1:${out##*:}} ;;
      '[::]:'* | ':::'*) base="http://[::1]:${out##*:}" ;;
      *) base="http://$out" ;;
    esac
  fi
  if [ -z "$ids" ] && [ -z "$base" ]; then
    skip 'no nginx container runs, and no --nginx-url'
    problem 'nginx: no running container'
  else
    for p in /nginx-health /gateway-health /auth-health /web-health; do
      if [ -n "$base" ] && out=$(http_get "$base$p"); then
        printf '%s%s %s\n' "$base" "$p" "$out"
      elif [ -n "$ids" ]; then
        id=${ids%%$'\n'*}
        out=$(limit 20 docker exec "$id" sh -c 'p=$1
          if command -v curl >/dev/null 2>&1; then curl -sS -m 5 -w " %{http_code}" "http://127.0.0.1$p"
          elif command -v wget >/dev/null 2>&1; then wget -q -T 5 -O - "http://127.0.0.1$p"
          else echo "neither curl nor wget in the nginx container, and the published port did not answer"; fi' sh "$p" 2>&1)
        printf '(inside nginx) %s %s\n' "$p" "$out"
      else
        printf '%s%s %s\n' "$base" "$p" "$out"
        problem "nginx $p: $out"
      fi
    done
  fi

  section 'Compose: PostgreSQL (pg_isready, connections)'
  ids=$(service_containers postgres)
  if [ -z "$ids" ]; then
    skip 'no running postgres container'
    problem 'postgres: no running container'
  else
    id=${ids%%$'\n'*}
    # The user and database come from the container's own environment.
    out=$(limit 20 docker exec "$id" sh -c 'pg_isready -U "$POSTGRES_USER" -d "${POSTGRES_DB:-$POSTGRES_USER}"' 2>&1)
    printf 'pg_isready: %s\n' "$out"
    case $out in *'accepting connections'*) ;; *) problem "postgres: pg_isready says: $out" ;; esac
    echo 'connections by state (pg_stat_activity of the database), and max_connections:'
    limit 20 docker exec "$id" sh -c 'psql -X -At -F " " -U "$POSTGRES_USER" -d "${POSTGRES_DB:-$POSTGRES_USER}" -c "$1" -c "show max_connections"' sh \
      "select coalesce(state, '(none)'), count(*) from pg_stat_activity where datname = current_database() group by 1 order by 1" 2>&1
  fi

  section 'Compose: Redis (PING, memory)'
  ids=$(service_containers redis)
  if [ -z "$ids" ]; then
    skip 'no running redis container'
    problem 'redis: no running container'
  else
    id=${ids%%$'\n'*}
    out=$(limit 20 docker exec "$id" redis-cli ping 2>&1)
    printf 'redis-cli ping: %s\n' "$out"
    [ "$out" = PONG ] || problem "redis: PING answered: $out"
    limit 20 docker exec "$id" redis-cli info memory 2>&1 | grep -E '^(used_memory_human|maxmemory_human|maxmemory_policy):' | tr -d '\r'
  fi

  section 'Compose: runtime metrics (/events/metrics .computed, inside a runtime container)'
  ids=$(service_containers runtime)
  if [ -z "$ids" ]; then
    skip 'no running runtime container'
  else
    id=${ids%%$'\n'*}
    # The key is the container's own AGENT_RUNTIME__INTERNAL_API_KEY, read inside it: it never leaves it.
    js="(async () => { const port = process.env.AGENT_RUNTIME__PORT || 8001; try { const r = await fetch('http://127.0.0.1:' + port + '/events/metrics', { headers: { 'x-internal-auth': process.env.AGENT_RUNTIME__INTERNAL_API_KEY || '' }, signal: AbortSignal.timeout(5000) }); console.log(r.status); console.log(await r.text()); } catch (e) { console.log('unreachable: ' + (e.cause?.code ?? e.message)); } })()"
    out=$(limit 20 docker exec "$id" node -e "$js" 2>&1)
    status=${out%%$'\n'*}
    body=${out#*$'\n'}
    if [ "$status" = 200 ]; then
      printf 'computed: %s\n' "$(printf '%s' "$body" | json_get .computed)"
    else
      printf 'GET /events/metrics: %s %s\n' "$status" "$( [ "$body" != "$out" ] && printf '%s' "$body" | head -c 500)"
    fi
  fi

  section "Compose: logs (last $TAIL lines of each service, secrets removed)"
  for service in ${services:-nginx auth gateway runtime llm-proxy web postgres redis}; do
    echo "--- $service"
    dc logs --no-color --tail="$TAIL" "$service" 2>&1
  done

  section "Compose: configuration (the containers' environment: settings by name, secrets hidden)"
  for id in $CONTAINERS; do
    echo "--- $(container_name "$id")"
    limit 20 docker inspect --format "$INSPECT_ENV" "$id" 2>&1 | env_lines '  '
  done
  return 0
}

# ---- npm start

report_local() {
  if [ -n "$LOCAL_WHY" ]; then
    section 'npm start: health and readiness'
    skip "$LOCAL_WHY"
    [ "$MODE" = compose ] || report_local_database
    return 0
  fi
  local entry name prefix port base res
  section 'npm start: health and readiness (/health and /ready of each service and the website)'
  for entry in $LOCAL_SERVICES; do
    IFS=: read -r name prefix port <<<"$entry"
    base=$(local_url "$prefix" "$port")
    res=$(http_get "$base/health")
    printf '%-9s %s/health %s\n' "$name" "$base" "$res"
    res=$(http_get "$base/ready")
    printf '%-9s %s/ready %s\n' "$name" "$base" "$res"
    case $res in 200\ *) ;; *) problem "$name ($base) is not ready: $res" ;; esac
  done

  section 'npm start: runtime metrics (/events/metrics .computed)'
  base=$(local_url AGENT_RUNTIME 8001)
  if [ -z "$LOCAL_KEY" ]; then
    skip "no internal key: no <P>__INTERNAL_API_KEY set and no $DATA_DIR/internal-api-key (set CODELAB_DATA_DIR to the platform's data directory)"
  else
    printf 'internal key from: %s (not shown)\n' "$LOCAL_KEY_FROM"
    HEADER_NAME=X-Internal-Auth
    HEADER_VALUE=$LOCAL_KEY
    res=$(http_get "$base/events/metrics")
    HEADER_NAME=''
    HEADER_VALUE=''
    case $res in
      200\ *) printf 'computed: %s\n' "$(printf '%s' "${res#* }" | json_get .computed)" ;;
      *)
        printf 'GET %s/events/metrics: %s\n' "$base" "$(printf '%s' "$res" | head -c 500)"
        case $res in 401\ *) problem "runtime refused the internal key from $LOCAL_KEY_FROM (401): is it this platform's key?" ;; esac
        ;;
    esac
  fi

  section 'npm start: processes (ps: CPU, memory in KiB, uptime)'
  if have ps; then
    # Arguments only (never the environment): node and the service's entry file.
    local launcher
    launcher=''
    grep -q '"holder":"platform"' "$DATA_DIR/pg.lock" 2>/dev/null && launcher=$(sed -nE 's/.*"pid":([0-9]+).*/\1/p' "$DATA_DIR/pg.lock" | head -n 1)
    if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
      echo "the launcher of $DATA_DIR (pid $launcher, from pg.lock) and its services:"
      ps -eo pid,ppid,etime,pcpu,rss,args 2>/dev/null | awk -v root="$launcher" 'NR == 1 || $1 == root || $2 == root'
    else
      echo 'every launcher and service process of this host:'
      ps -eo pid,ppid,etime,pcpu,rss,args 2>/dev/null | awk 'NR == 1 || /scripts\/start\.ts|services\/[a-z-]+\/src\/main\.ts/' | grep -v awk
    fi
  else
    skip 'ps is not installed'
  fi
  echo 'logs: npm start prints every service'"'"'s lines in its own terminal, prefixed with the service name (not collected here)'

  report_local_database
  report_local_redis
  return 0
}

report_local_database() {
  section 'npm start: PostgreSQL (embedded engine: data/pg.lock; database URLs)'
  local lock="$DATA_DIR/pg.lock" url pid state holder out v
  if [ -f "$lock" ]; then
    # {"pid":…,"holder":"platform","state":"serving","url":"postgres://postgres@127.0.0.1:…/postgres"}: no password in it
    pid=$(sed -nE 's/.*"pid":([0-9]+).*/\1/p' "$lock" | head -n 1)
    holder=$(sed -nE 's/.*"holder":"([^"]*)".*/\1/p' "$lock" | head -n 1)
    state=$(sed -nE 's/.*"state":"([^"]*)".*/\1/p' "$lock" | head -n 1)
    url=$(sed -nE 's/.*"url":"([^"]*)".*/\1/p' "$lock" | head -n 1)
    printf '%s: holder=%s pid=%s state=%s url=%s\n' "$lock" "${holder:-?}" "${pid:-?}" "${state:-?}" "$(mask_url "${url:-none}")"
    if [ -n "$pid" ]; then
      if kill -0 "$pid" 2>/dev/null; then echo "pid $pid is alive"
      else echo "pid $pid is gone: a stale lock (the next npm start takes it over)"; fi
    fi
    if [ -n "$url" ]; then
      if have pg_isready; then
        out=$(limit 10 pg_isready -d "$url" 2>&1)
        printf 'pg_isready: %s\n' "$out"
        case $out in *'accepting connections'*) ;; *) problem "the embedded database ($lock): pg_isready says: $out" ;; esac
      else
        echo 'pg_isready: not installed (the /ready checks above say whether the database answers)'
      fi
    fi
  else
    printf '%s: none (no embedded engine is served from %s)\n' "$lock" "$DATA_DIR"
  fi
  for v in AUTH_SERVICE__DB_URL AGENT_RUNTIME__DB_URL; do
    url=${!v-}
    [ -n "$url" ] || continue
    if have pg_isready; then out=$(PGCONNECT_TIMEOUT=5 limit 10 pg_isready -d "$url" 2>&1); else out='pg_isready not installed'; fi
    printf '%s=%s: %s\n' "$v" "$(mask_url "$url")" "$out"
    case $out in *'accepting connections'* | 'pg_isready not installed') ;; *) problem "the database of $v: pg_isready says: $out" ;; esac
  done
  return 0
}

report_local_redis() {
  section 'npm start: Redis (PING of AGENT_RUNTIME__REDIS_URL / AUTH_SERVICE__REDIS_URL)'
  local v url found='' pw rest creds user hostpart scheme out
  for v in AGENT_RUNTIME__REDIS_URL AUTH_SERVICE__REDIS_URL; do
    url=${!v-}
    [ -n "$url" ] || continue
    found=1
    if ! have redis-cli; then printf '%s=%s: redis-cli is not installed\n' "$v" "$(mask_url "$url")"; continue; fi
    # The password goes to redis-cli through REDISCLI_AUTH, not on its command line.
    scheme=${url%%://*}
    rest=${url#*://}
    pw=''
    user=''
    hostpart=$rest
    case $rest in
      *@*)
        creds=${rest%%@*}
        hostpart=${rest#*@}
        case $creds in *:*) user=${creds%%:*}; pw=${creds#*:} ;; *) user=$creds ;; esac
        ;;
    esac
    out=$(REDISCLI_AUTH=$pw limit 10 redis-cli -u "$scheme://${user:+$user@}$hostpart" ping 2>&1)
    printf '%s=%s: %s\n' "$v" "$(mask_url "$url")" "$(printf '%s' "$out" | tr '\n' ' ')"
    [ "$out" = PONG ] || problem "redis ($v): PING answered: $out"
  done
  [ -n "$found" ] || echo 'no Redis configured (AGENT_RUNTIME__REDIS_URL unset): the frame log and cancels live in the runtime'"'"'s memory, as npm start runs by default'
  return 0
}

report_summary() {
  section 'Summary'
  printf 'Compose stack: %s\n' "$([ -z "$COMPOSE_WHY" ] && echo "found ($(printf '%s\n' "$CONTAINERS" | wc -l | tr -d ' ') containers)" || echo "not examined: $COMPOSE_WHY")"
  printf 'npm start: %s\n' "$([ -z "$LOCAL_WHY" ] && echo "found (answering:$LOCAL_UP)" || echo "not examined: $LOCAL_WHY")"
  if [ -s "$TMP/problems" ]; then
    echo 'problems seen:'
    sed 's/^/  - /' "$TMP/problems"
  else
    echo 'problems seen: none'
  fi
}

main() {
  echo 'CodeLab Platform debug info (scripts/debug-info.sh): secrets are removed; review before posting.'
  report_versions
  report_configuration
  report_compose
  report_local
  report_summary
}

main 2>&1 | sed -E -f "$TMP/redact.sed" | DEBUG_INFO_SECRETS=$SECRETS awk "$REDACT_AWK"
exit 0
