#!/usr/bin/env bash
# Entrypoint of the postgres stand-in (see Dockerfile): the official image's start-up contract,
# written for this stand-in. `postgres` (or options only) initialises an empty PGDATA once, then
# execs the server as PID 1; any other command runs as it is.
set -Eeo pipefail

log() { printf '%s\n' "$*"; }

# VAR from VAR or VAR_FILE (Docker secrets), never both
file_env() {
  local var="$1" file_var="$1_FILE" default="${2:-}" value
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
    exit 1
  fi
  value="$default"
  if [ -n "${!var:-}" ]; then
    value="${!var}"
  elif [ -n "${!file_var:-}" ]; then
    value="$(< "${!file_var}")"
  fi
  export "$var"="$value"
  unset "$file_var"
}

setup_env() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=}"
  DATABASE_ALREADY_EXISTS=
  if [ -s "$PGDATA/PG_VERSION" ]; then DATABASE_ALREADY_EXISTS=true; fi
}

# directories, owned by postgres when started as root
create_directories() {
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 03775 /var/run/postgresql || :
  if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"
    if [ "$(id -u)" = 0 ]; then find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +; fi
    chmod 700 "$POSTGRES_INITDB_WALDIR"
  fi
  if [ "$(id -u)" = 0 ]; then
    find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
  fi
}

verify_minimum_env() {
  if [ "${#POSTGRES_PASSWORD}" -ge 100 ]; then
    cat >&2 <<'EOWARN'

WARNING: The supplied POSTGRES_PASSWORD is 100+ characters.

  This will not work if used via PGPASSWORD with "psql".

EOWARN
  fi
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    cat >&2 <<'EOE'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.

       See PostgreSQL documentation about "trust":
       https://www.postgresql.org/docs/current/auth-trust.html
EOE
    exit 1
  fi
  if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
    cat >&2 <<'EOWARN'
********************************************************************************
WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
         anyone with access to the Postgres port to access your database without
         a password, even if POSTGRES_PASSWORD is set.
********************************************************************************
EOWARN
  fi
}

init_database_dir() {
  # initdb insists on a passwd entry for the current uid (`docker run --user 1234`)
  if ! getent passwd "$(id -u)" > /dev/null; then
    local wrapper
    for wrapper in {/usr,}/lib{/*,}/libnss_wrapper.so; do
      if [ -s "$wrapper" ]; then
        NSS_WRAPPER_PASSWD="$(mktemp)" NSS_WRAPPER_GROUP="$(mktemp)"
        export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
        printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$(id -u)" "$(id -g)" "$PGDATA" > "$NSS_WRAPPER_PASSWD"
        printf 'postgres:x:%s:\n' "$(id -g)" > "$NSS_WRAPPER_GROUP"
        break
      fi
    done
  fi
  local waldir=()
  # shellcheck disable=SC2034 # used inside the eval
  if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then waldir=(--waldir "$POSTGRES_INITDB_WALDIR"); fi
  # an empty --pwfile is refused, hence the newline; POSTGRES_INITDB_ARGS is word-split on purpose
  eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") "${waldir[@]}" '"$POSTGRES_INITDB_ARGS"
  if [[ "${LD_PRELOAD:-}" == */libnss_wrapper.so ]]; then
    rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
    unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
  fi
}

# network connections: the method given, else the server's password_encryption (scram-sha-256)
setup_hba() {
  [ "${1:-}" = postgres ] && shift
  local method
  method="$(postgres -C password_encryption "$@")"
  : "${POSTGRES_HOST_AUTH_METHOD:=$method}"
  {
    printf '\n'
    if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then printf '# warning trust is enabled for all connections\n'; fi
    printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
  } >> "$PGDATA/pg_hba.conf"
}

run_sql() {
  local cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ -n "$POSTGRES_DB" ]; then cmd+=(--dbname "$POSTGRES_DB"); fi
  PGHOST='' PGHOSTADDR='' "${cmd[@]}" "$@"
}

temp_server_start() {
  [ "${1:-}" = postgres ] && shift
  set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
  PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
  PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

setup_db() {
  local exists
  # POSTGRES_DB emptied for run_sql only (no --dbname of its own); the name itself goes in as :'db'
  # shellcheck disable=SC2097,SC2098
  exists="$(POSTGRES_DB='' run_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db' ;")"
  if [ -z "$exists" ]; then
    # shellcheck disable=SC2097,SC2098
    POSTGRES_DB='' run_sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
    printf '\n'
  fi
}

process_init_files() {
  local f
  printf '\n'
  for f; do
    case "$f" in
      *.sh)
        # shellcheck disable=SC1090
        if [ -x "$f" ]; then log "$0: running $f"; "$f"; else log "$0: sourcing $f"; . "$f"; fi ;;
      *.sql) log "$0: running $f"; run_sql -f "$f"; printf '\n' ;;
      *.sql.gz) log "$0: running $f"; gunzip -c "$f" | run_sql; printf '\n' ;;
      *.sql.xz) log "$0: running $f"; xzcat "$f" | run_sql; printf '\n' ;;
      *.sql.zst) log "$0: running $f"; zstd -dc "$f" | run_sql; printf '\n' ;;
      *) log "$0: ignoring $f" ;;
    esac
    printf '\n'
  done
}

wants_help() {
  local arg
  for arg; do
    case "$arg" in -'?' | --help | --describe-config | -V | --version) return 0 ;; esac
  done
  return 1
}

main() {
  if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
  if [ "$1" = postgres ] && ! wants_help "$@"; then
    setup_env
    create_directories
    if [ "$(id -u)" = 0 ]; then
      exec gosu postgres "${BASH_SOURCE[0]}" "$@"
    fi
    if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
      verify_minimum_env
      ls /docker-entrypoint-initdb.d/ > /dev/null
      init_database_dir
      setup_hba "$@"
      export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
      temp_server_start "$@"
      setup_db
      process_init_files /docker-entrypoint-initdb.d/*
      temp_server_stop
      unset PGPASSWORD
      printf '\nPostgreSQL init process complete; ready for start up.\n\n'
    else
      printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
    fi
  fi
  exec "$@"
}

main "$@"
