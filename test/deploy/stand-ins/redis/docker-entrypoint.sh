#!/bin/sh
# Entrypoint of the redis stand-in (see Dockerfile), with the official image's start-up rules.
set -e

# options only (`--appendonly yes`) or a config file first: run redis-server with them
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi

if [ "$1" = redis-server ]; then
  # the official image is built with protected mode off; Debian's binary has it on: the same
  # default here, as the first option so that the caller's options still override it
  # (after the step down below this runs again and finds it in place)
  case "${2:-}" in
    --protected-mode) ;;
    '' | -*) shift; set -- redis-server --protected-mode no "$@" ;;
  esac
  # started as root: own /data, then drop to the redis user
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
  fi
  # files written by redis: private unless a umask was chosen
  if [ "$(umask)" = 0022 ]; then umask 0077; fi
fi

exec "$@"
