#!/usr/bin/env bash
# Prints the docker client to use: the first of $DOCKER, docker, /usr/bin/docker that can build
# with BuildKit (the Dockerfile's stage selection needs it): one with the buildx plugin, or a
# 20.10-22.x client, whose BuildKit is built in (DOCKER_BUILDKIT=1, set by the Makefile).
for candidate in ${DOCKER:-} docker /usr/bin/docker; do
  command -v "$candidate" >/dev/null 2>&1 || continue
  if "$candidate" buildx version >/dev/null 2>&1; then echo "$candidate"; exit 0; fi
  major="$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)"
  if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then echo "$candidate"; exit 0; fi
done
echo docker
