#!/usr/bin/env bash
# Makes sure a Docker daemon answers: uses a running one, or (as root, with Debian's docker.io
# installed) starts dockerd in the background and waits for it, at most 60 s. Exits non-zero, with
# the daemon's log, when there is none: the container checks must fail loudly, never pass silently.
set -uo pipefail
docker="${DOCKER:-docker}"
"$docker" info >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
  echo "no Docker daemon answers, and this shell cannot start one (needs root and dockerd)" >&2
  exit 1
fi
log="${DOCKERD_LOG:-/tmp/bookstore-dockerd.log}"
echo "starting dockerd (log: $log)"
nohup setsid dockerd >"$log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  "$docker" info >/dev/null 2>&1 && { echo "dockerd is up"; exit 0; }
  sleep 0.5
done
echo "dockerd did not come up within 60 s; its log:" >&2
tail -40 "$log" >&2
exit 1
