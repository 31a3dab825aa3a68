#!/bin/sh
# As in the official node image: `docker run IMAGE -e '…'` or `docker run IMAGE app.js` runs node
# with those arguments; a command (`docker run IMAGE npm -v`) runs as it is. exec: the command is
# PID 1 and gets the stop signal itself.
set -e
if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1" || true)" ] || { [ -f "$1" ] && ! [ -x "$1" ]; }; then
  set -- node "$@"
fi
exec "$@"
