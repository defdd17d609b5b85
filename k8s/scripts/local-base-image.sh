#!/usr/bin/env bash
# Makes the runtime base image locally, for machines that cannot pull `debian:12.15-slim`: a
# minimal Debian bookworm root from Debian's own packages (debootstrap --variant=minbase, the recipe
# the official image uses), trimmed like the slim variant, imported as $1 (default
# bookstore-local/debian:bookworm-minbase). Kept if it already exists. Needs root and debootstrap.
set -euo pipefail
image="${1:-bookstore-local/debian:bookworm-minbase}"
docker="${DOCKER:-docker}"
if $docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image: $image exists"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$root/log" 2>&1 \
  || { tail -20 "$root/log" >&2; exit 1; }
# What the slim images leave out: documentation, manuals, locales, apt lists and caches.
rm -rf "$root"/rootfs/usr/share/{doc,man,info,locale,lintian,linda}/* \
       "$root"/rootfs/var/cache/apt/* "$root"/rootfs/var/lib/apt/lists/* "$root"/rootfs/var/log/*
tar -C "$root/rootfs" -c . | $docker import - "$image" >/dev/null
echo "base image: $image ($(cat "$root/rootfs/etc/debian_version")) made with debootstrap"
