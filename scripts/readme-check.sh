#!/usr/bin/env bash
# Runs the README's operator commands literally: every ```sh block that follows a line
# `<!-- readme-check: NAME -->`, in bash with -euo pipefail, from a directory that looks like the
# repository root (so `data/…` and `npm run auth` mean what they mean to a reader) but whose
# `data` is the data directory of the platform under test.
#
#   scripts/readme-check.sh --data DIR [NAME…]     (no NAME: every block but one-by-one)
#
# The platform (`npm start` with CODELAB_DATA_DIR=DIR) must be up on the default ports, except for
# the `one-by-one` block, which starts its own services (PostgreSQL and Redis of this machine) on
# ports 81xx and is checked with a conversation through its second gateway, then stopped.
# Exit 0 when every block succeeded and printed what it should; 1 naming the block otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data=""
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data="$(cd "$2" && pwd)"; shift 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
[ -n "$data" ] || { echo "usage: $0 --data DIR [NAME…]" >&2; exit 2; }
for tool in curl jq npx openssl script; do command -v "$tool" >/dev/null || { echo "readme-check: $tool is missing (apt-get install -y $(case $tool in npx) echo npm ;; script) echo util-linux ;; *) echo "$tool" ;; esac))" >&2; exit 2; }; done

# The blocks, by name (awk: the sh block after each marker).
block() {
  awk -v want="$1" '
    $0 ~ "^<!-- readme-check: " want " -->$" { armed = 1; next }
    armed && /^```sh$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }
  ' "$root/README.md"
}
all_names() { sed -n 's/^<!-- readme-check: \([a-z-]*\) -->$/\1/p' "$root/README.md"; }
[ ${#names[@]} -gt 0 ] || mapfile -t names < <(all_names | grep -vx one-by-one)

# The stand-in root: every top-level entry of the repository, and `data` → the platform's.
shadow="$(mktemp -d)"
pids_file="$shadow.pids"
cleanup() {
  if [ -s "$pids_file" ]; then
    # the one-by-one services: SIGTERM, then whatever is left
    xargs -r kill -TERM < "$pids_file" 2>/dev/null || true
    for _ in $(seq 1 20); do xargs -r kill -0 < "$pids_file" 2>/dev/null || break; sleep 0.5; done
    xargs -r kill -KILL < "$pids_file" 2>/dev/null || true
  fi
  rm -rf "$shadow" "$pids_file"
}
trap cleanup EXIT
for entry in "$root"/* "$root"/.[!.]*; do
  name="$(basename "$entry")"
  [ "$name" = data ] || [ "$name" = .git ] || ln -s "$entry" "$shadow/$name"
done
ln -s "$data" "$shadow/data"

failed=0
run() { # NAME: runs the block, prints its output, checks what it must print
  local name="$1" code out
  code="$(block "$name")"
  [ -n "$code" ] || { echo "readme-check: no block named '$name' in README.md"; failed=1; return; }
  echo "--- $name"
  if [ "$name" = one-by-one ]; then
    # its services run in the background: remember every process of its group to stop them
    (cd "$shadow" && setsid bash -euo pipefail -c "$code"$'\n'"jobs -p > '$pids_file'"$'\n'"wait" > "$shadow/one-by-one.log" 2>&1 &)
    local deadline=$((SECONDS + 120))
    until curl -fsS http://127.0.0.1:8110/ready >/dev/null 2>&1 && curl -fsS http://127.0.0.1:8100/ready >/dev/null 2>&1; do
      if [ $SECONDS -gt $deadline ]; then tail -40 "$shadow/one-by-one.log"; echo "readme-check: one-by-one: the gateways did not become ready"; failed=1; return; fi
      sleep 1
    done
    until [ -s "$pids_file" ]; do sleep 0.2; done
    # a user of its own, made with the CLI on the database of the block (its admin may be older)
    local db
    db="$(sed -n 's/.*DB=\(postgres:[^;[:space:]]*\).*/\1/p' <<<"$code" | head -1)"
    code='U=readme$RANDOM$RANDOM
AUTH_SERVICE__DB_URL='"$db"' npm run --silent auth -- create-user --username $U --email $U@example.com --password "a long password 2"
TOKEN=$(curl -fsS http://127.0.0.1:8103/oauth/token -d grant_type=password -d client_id=codelab-flutter-app -d username=$U --data-urlencode password="a long password 2" | jq -r .access_token)
npx -y wscat -c ws://127.0.0.1:8110/api/v1/ws/one-by-one-$RANDOM -H "Authorization: Bearer $TOKEN" -x "{\"type\":\"user_message\",\"content\":\"hello\"}" -w 3'
  fi
  # under a terminal of its own (script), as a reader runs it: wscat prints nothing without one
  printf '%s\n' "$code" > "$shadow/block.sh"
  if ! out="$(cd "$shadow" && script -qec "bash -euo pipefail block.sh" /dev/null < /dev/null 2>&1)"; then
    echo "$out"
    echo "readme-check: block '$name' failed"
    failed=1
    return
  fi
  echo "$out"
  case "$name" in
    token | one-by-one) grep -q '"is_final":true' <<<"$out" || { echo "readme-check: '$name': no final frame in the conversation"; failed=1; } ;;
    cli) [ "$(tr -d '\r' <<<"$out" | awk '$1 == "USERNAME" { for (i = 1; i <= NF; i++) if ($i == "ADMIN") col = i } $1 == "alice" && col { print $col }')" = yes ] || { echo "readme-check: 'cli': list-users does not show alice as an admin"; failed=1; } ;;
    debug-info)
      grep -q '^=== npm start: health and readiness (' "$shadow/debug-info.txt" || { echo "readme-check: 'debug-info': the report found no running platform"; failed=1; }
      for secret_file in "$data/internal-api-key" "$data/auth/admin-password"; do
        [ ! -s "$secret_file" ] || ! grep -qF -- "$(cat "$secret_file")" "$shadow/debug-info.txt" || { echo "readme-check: 'debug-info': the report holds the secret of $secret_file"; failed=1; }
      done ;;
    diagnostics) [ "$(grep -c '^[a-z-]* [0-9]' <<<"$out")" -ge 4 ] || { echo "readme-check: 'diagnostics': not every service reported its version"; failed=1; } ;;
  esac
}
for name in "${names[@]}"; do run "$name"; done
[ "$failed" = 0 ] && echo "readme-check: ${names[*]}: ok"
exit "$failed"
