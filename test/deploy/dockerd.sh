#!/usr/bin/env bash
# A private Docker Engine for the deployment tests (test/deploy/README.md).
#
#   eval "$(test/deploy/dockerd.sh start [DIR])"   # starts it (or finds it running), prints the export
#   test/deploy/dockerd.sh env [DIR]               # prints `export DOCKER_HOST=unix://DIR/run/docker.sock`
#   test/deploy/dockerd.sh status [DIR]            # exit 0 when it answers
#   test/deploy/dockerd.sh stop [DIR]              # stops it by its pid and cleans what it leaves
#
# DIR (default /var/tmp/codelab-docker, or CODELAB_DOCKER_DIR) holds everything of this daemon:
# DIR/data (data root: images, build cache, volumes; kept by `stop` so that the next CI run on this
# machine starts with the stand-in images and the layer cache), DIR/exec (exec root, with its own
# containerd), DIR/run (pid file, unix socket, what `start` found so that `stop` undoes only its own
# doing), DIR/dockerd.log. `rm -rf DIR` after `stop` forgets everything.
#
# So that it can run next to another Docker daemon on the same machine, it never uses docker0: its
# default bridge is its own (CODELAB_DOCKER_BRIDGE, default cl-docker0, CODELAB_DOCKER_BRIDGE_CIDR
# 10.212.255.1/24, created by `start`, removed by `stop`), Compose networks come from its own pool
# (CODELAB_DOCKER_POOL, 10.213.0.0/16 in /24s), containers live in their own cgroup (/DIRNAME),
# containerd namespace DIRNAME. iptables chains DOCKER, DOCKER-USER and DOCKER-ISOLATION-STAGE-* are
# global names that every Docker daemon shares (and flushes when it starts): `start` puts back the
# rules another daemon had there, `stop` deletes the rules of this daemon's bridges, and the chains
# themselves (with IP forwarding as it was) only when this daemon created them and no other dockerd
# runs. `stop` also ends what a killed daemon leaves (containerd, shims, container processes in its
# cgroups, mounts under DIR) and is safe to run when nothing runs.
#
# Root only (dockerd needs it). Needs: apt-get install docker.io docker-compose (Docker 20.10,
# /usr/bin/docker; a /usr/local/bin/docker 28.x client without buildx is avoided on purpose).
set -euo pipefail

cmd="${1:-}"
DIR="${2:-${CODELAB_DOCKER_DIR:-/var/tmp/codelab-docker}}"
DIR="${DIR%/}"
DOCKER=/usr/bin/docker
SOCK="$DIR/run/docker.sock"
PIDFILE="$DIR/run/dockerd.pid"
STATE="$DIR/run/state"
LOG="$DIR/dockerd.log"
NAME="$(basename "$DIR" | tr -c 'a-zA-Z0-9_.\n-' '-')"
BRIDGE="${CODELAB_DOCKER_BRIDGE:-cl-docker0}"
BRIDGE_CIDR="${CODELAB_DOCKER_BRIDGE_CIDR:-10.212.255.1/24}"
POOL="${CODELAB_DOCKER_POOL:-10.213.0.0/16}"
STOP_TIMEOUT="${CODELAB_DOCKER_STOP_TIMEOUT:-60}"
CHAINS=(filter:DOCKER filter:DOCKER-USER filter:DOCKER-ISOLATION-STAGE-1 filter:DOCKER-ISOLATION-STAGE-2 nat:DOCKER)

say() { printf 'dockerd.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  sed -n '2,8p' "$0" >&2
  exit 2
}

# pid of this DIR's dockerd when it runs (checked by its command line, not only the pid file)
daemon_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "dockerd .*--pidfile $PIDFILE" || return 1
  echo "$pid"
}

answers() { DOCKER_HOST="unix://$SOCK" "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

print_env() { printf 'export DOCKER_HOST=unix://%s\n' "$SOCK"; }

# a process that exists and is not a zombie (a killed daemon whose parent has not reaped it yet)
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ] && kill -0 "$1" 2>/dev/null; }

# other dockerd processes on this machine (not ours)
other_dockerd() {
  local ours="${1:-}" p
  for p in $(pgrep -x dockerd || true); do
    [ "$p" = "$ours" ] || ! alive "$p" || echo "$p"
  done
}

chain_exists() { iptables -t "${1%%:*}" -n -L "${1#*:}" >/dev/null 2>&1; }

mtu_of_default_route() {
  local dev mtu
  dev="$(ip -4 route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')"
  mtu="$([ -n "$dev" ] && ip -o link show dev "$dev" 2>/dev/null | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
  echo "${mtu:-1500}"
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root (dockerd needs it)"
  command -v dockerd >/dev/null && [ -x "$DOCKER" ] || die "Docker Engine is not installed: apt-get install -y docker.io docker-compose"
  if pid="$(daemon_pid)"; then
    if answers; then
      say "already running (pid $pid, $SOCK)"
      print_env
      return 0
    fi
    say "pid $pid does not answer yet; waiting"
  else
    for p in $(other_dockerd ""); do
      if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "--bridge $BRIDGE "; then
        die "dockerd $p already uses the bridge $BRIDGE: for a second daemon set CODELAB_DOCKER_BRIDGE, CODELAB_DOCKER_BRIDGE_CIDR and CODELAB_DOCKER_POOL"
      fi
    done
    # leftovers of a daemon that did not stop cleanly
    [ -e "$STATE" ] && cleanup_after_daemon ""
    mkdir -p "$DIR/data" "$DIR/exec" "$DIR/run"
    chmod 711 "$DIR"
    {
      for c in "${CHAINS[@]}"; do
        if chain_exists "$c"; then echo "chain_existed $c"; else echo "chain_created $c"; fi
      done
      echo "ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
      echo "forward_policy $(iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}')"
      if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "bridge_existed $BRIDGE"; else echo "bridge_created $BRIDGE"; fi
    } > "$STATE"
    # the rules other daemons have in the shared chains (dockerd flushes those chains when it starts)
    for c in "${CHAINS[@]}"; do
      chain_exists "$c" && iptables -t "${c%%:*}" -S "${c#*:}" 2>/dev/null | grep '^-A ' | sed "s/^/${c%%:*} /"
    done > "$DIR/run/rules-before" || true
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
      ip link add name "$BRIDGE" type bridge
      ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
      ip link set "$BRIDGE" up
    fi
    [ -e "$DIR/daemon.json" ] || echo '{}' > "$DIR/daemon.json"
    : >> "$LOG"
    # setsid: the daemon outlives the shell that started it and gets no terminal signals
    setsid dockerd \
      --config-file "$DIR/daemon.json" \
      --data-root "$DIR/data" \
      --exec-root "$DIR/exec" \
      --pidfile "$PIDFILE" \
      -H "unix://$SOCK" \
      --bridge "$BRIDGE" \
      --mtu "$(mtu_of_default_route)" \
      --default-address-pool "base=$POOL,size=24" \
      --cgroup-parent "/$NAME" \
      --containerd-namespace "$NAME" \
      --containerd-plugins-namespace "$NAME-plugins" \
      >> "$LOG" 2>&1 < /dev/null &
    started=$!
    say "started dockerd (pid $started), log $LOG"
  fi
  local deadline=$((SECONDS + 60))
  until answers; do
    if [ -n "${started:-}" ] && ! alive "$started"; then
      tail -n 30 "$LOG" >&2 || true
      stop || true
      die "dockerd exited at start (log above)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 30 "$LOG" >&2 || true
      stop || true
      die "dockerd did not answer on $SOCK within 60 s (log above)"
    fi
    sleep 0.2
  done
  [ -n "${started:-}" ] && restore_other_rules
  print_env
}

# this daemon's bridge: its default one, or br-<network id> of a network in its data root (also
# when it died and cannot be asked), or one it named when asked before stopping
is_ours() {
  local b="$1"
  [ "$b" = "$BRIDGE" ] && return 0
  [ -e "$STATE" ] && grep -qx "owned_bridge $b" "$STATE" && return 0
  [[ "$b" =~ ^br-[0-9a-f]{12}$ ]] && grep -qa "${b#br-}" "$DIR/data/network/files/local-kv.db" 2>/dev/null
}

# interfaces a rule names (-i/-o)
rule_ifaces() { awk '{for (i = 1; i < NF; i++) if ($i == "-i" || $i == "-o") print $(i + 1)}' <<< "$1"; }

# put back the other daemons' rules that this daemon's start flushed from the shared chains (not
# this daemon's own from an earlier run, nor rules of interfaces that are gone)
restore_other_rules() {
  local table rule args n=0 i skip
  [ -s "$DIR/run/rules-before" ] || return 0
  while read -r table rule; do
    read -r -a args <<< "${rule#-A }"
    [ "${args[*]: -2}" = "-j RETURN" ] && [ ${#args[@]} -eq 3 ] && continue # the chain's final RETURN
    skip=
    for i in $(rule_ifaces "$rule"); do
      if is_ours "$i" || ! ip link show "$i" > /dev/null 2>&1; then skip=1; fi
    done
    [ -z "$skip" ] || continue
    iptables -t "$table" -C "${args[@]}" 2>/dev/null && continue
    iptables -t "$table" -I "${args[0]}" 1 "${args[@]:1}" 2>/dev/null && n=$((n + 1))
  done < <(tac "$DIR/run/rules-before")
  rm -f "$DIR/run/rules-before"
  [ $n -eq 0 ] || say "restored $n iptables rules of another Docker daemon (dockerd flushes the shared chains at start)"
}

# bridges of this daemon's networks (asked while it still answers: also bridges it was told to name)
record_bridges() {
  local id name
  answers || return 0
  for id in $(DOCKER_HOST="unix://$SOCK" "$DOCKER" network ls -q --filter driver=bridge 2>/dev/null); do
    name="$(DOCKER_HOST="unix://$SOCK" "$DOCKER" network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$id" 2>/dev/null || true)"
    [ -n "$name" ] || name="br-${id:0:12}"
    echo "owned_bridge $name" >> "$STATE"
  done
}

kill_and_wait() { # kill_and_wait PID SECONDS
  local pid="$1" wait="$2" deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + wait))
  while alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      say "pid $pid still running after ${wait}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      return 0
    fi
    sleep 0.2
  done
}

# iptables rules naming one of these interfaces, deleted (filter and nat)
delete_rules_of() {
  local table rule ifaces=("$@")
  [ ${#ifaces[@]} -gt 0 ] || return 0
  for table in filter nat; do
    iptables -t "$table" -S 2>/dev/null | grep '^-A ' | while IFS= read -r rule; do
      for i in "${ifaces[@]}"; do
        if [[ " $rule " == *" -i $i "* || " $rule " == *" -o $i "* ]]; then
          # shellcheck disable=SC2086 # the rule is iptables-save's own quoting-free form
          iptables -t "$table" ${rule/#-A/-D} 2>/dev/null || true
          break
        fi
      done
    done || true
  done
}

ip_to_int() { local IFS=.; set -- $1; echo $(( ($1 << 24) + ($2 << 16) + ($3 << 8) + $4 )); }

# the hairpin rules of published ports (`-s IP/32 -d IP/32 … -j MASQUERADE`) for addresses of a
# bridge's subnet: they name no interface
delete_hairpin_rules_of() {
  local cidr net bits mask rule ip
  for cidr in $(ip -4 -o addr show dev "$1" 2>/dev/null | awk '{print $4}'); do
    bits="${cidr#*/}"; net="$(ip_to_int "${cidr%/*}")"; mask=$(( (0xffffffff << (32 - bits)) & 0xffffffff ))
    iptables -t nat -S POSTROUTING 2>/dev/null | grep -E '^-A POSTROUTING -s ([0-9.]+)/32 -d \1/32 .*-j MASQUERADE$' | while IFS= read -r rule; do
      ip="$(awk '{print $4}' <<< "$rule")"; ip="${ip%/32}"
      if [ $(( $(ip_to_int "$ip") & mask )) -eq $(( net & mask )) ]; then
        # shellcheck disable=SC2086
        iptables -t nat ${rule/#-A/-D} 2>/dev/null || true
      fi
    done || true
  done
}

cleanup_after_daemon() {
  local ours="$1" others bridges=() b c line
  others="$(other_dockerd "$ours")"
  # processes left in this daemon's cgroups, then the cgroup folders
  for cg in /sys/fs/cgroup/*/"$NAME" /sys/fs/cgroup/"$NAME"; do
    [ -d "$cg" ] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill -KILL 2>/dev/null || true
    for _ in $(seq 1 25); do # a killed process leaves its cgroup a moment later
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$cg" ] || break
      sleep 0.2
    done
  done
  # shims and containerd of this daemon (they hold its exec root), if dockerd could not stop them
  for p in $(pgrep -f -- "$DIR/exec/containerd/containerd" || true); do
    [ "$p" != "$$" ] && kill_and_wait "$p" 10
  done
  # dockerd takes any process with the recorded pid for its containerd, even a zombie nobody reaped
  rm -f "$DIR/exec/containerd/containerd.pid"
  # mounts under DIR (netns files, container root filesystems, the data root's private bind mount)
  awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo \
    | awk '{print length($0) " " $0}' | sort -rn | cut -d' ' -f2- | while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
    done
  # network: this daemon's bridges and their rules
  for b in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}'); do
    is_ours "$b" && bridges+=("$b")
  done
  if [ ${#bridges[@]} -gt 0 ]; then
    delete_rules_of "${bridges[@]}"
    for b in "${bridges[@]}"; do delete_hairpin_rules_of "$b"; done
  fi
  for b in "${bridges[@]}"; do
    # the default bridge only when `start` created it
    if [ "$b" = "$BRIDGE" ] && ! { [ -e "$STATE" ] && grep -qx "bridge_created $BRIDGE" "$STATE"; }; then continue; fi
    ip link delete "$b" 2>/dev/null || true
  done
  [ -e "$STATE" ] || return 0
  if [ -z "$others" ]; then
    # chains this daemon created, with the jumps to them
    if grep -q '^chain_created ' "$STATE"; then
      for line in "filter FORWARD -j DOCKER-USER" "filter FORWARD -j DOCKER-ISOLATION-STAGE-1" \
        "nat PREROUTING -m addrtype --dst-type LOCAL -j DOCKER" "nat OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"; do
        set -- $line
        c="$1:${*: -1}"
        grep -qx "chain_created $c" "$STATE" || continue
        table="$1"; shift
        while iptables -t "$table" -D "$@" 2>/dev/null; do :; done
      done
      for c in "${CHAINS[@]}"; do
        grep -qx "chain_created $c" "$STATE" || continue
        iptables -t "${c%%:*}" -F "${c#*:}" 2>/dev/null || true
      done
      for c in "${CHAINS[@]}"; do
        grep -qx "chain_created $c" "$STATE" && chain_exists "$c" || continue
        iptables -t "${c%%:*}" -X "${c#*:}" 2>/dev/null || say "iptables chain $c is still referenced; left"
      done
    fi
    # dockerd switched IP forwarding on (and the FORWARD policy to DROP) if it was off
    if grep -qx 'ip_forward 0' "$STATE"; then
      echo 0 > /proc/sys/net/ipv4/ip_forward || true
      policy="$(awk '$1 == "forward_policy" {print $2}' "$STATE")"
      [ -n "$policy" ] && iptables -P FORWARD "$policy" 2>/dev/null || true
    fi
  else
    say "another dockerd runs (pid $(echo $others | tr '\n' ' ')): shared iptables chains left in place"
  fi
  rm -f "$STATE"
}

stop() {
  local pid
  if pid="$(daemon_pid)"; then
    record_bridges
    say "stopping dockerd (pid $pid)"
    kill_and_wait "$pid" "$STOP_TIMEOUT"
  else
    pid=""
    say "not running ($DIR)"
  fi
  cleanup_after_daemon "$pid"
  rm -f "$PIDFILE" "$SOCK"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  status)
    if pid="$(daemon_pid)" && answers; then say "running (pid $pid)"; print_env; else say "not running ($DIR)"; exit 1; fi
    ;;
  *) usage ;;
esac
