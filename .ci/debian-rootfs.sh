#!/usr/bin/env bash
# Builds a minimal Debian bookworm root filesystem in DIR (for the tests
# that run real toolchain presets), unless DIR already holds one.
#
# No container registry is reachable here, so the image comes from
# debootstrap. Certificate authorities the host trusts locally (such as a
# TLS-terminating proxy's) are copied in, so that `ca-certificates` in the
# image trusts them too.
set -euo pipefail
dir=${1:?usage: debian-rootfs.sh DIR}
if [ -x "$dir/usr/bin/apt-get" ]; then
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi
tmp="$dir.tmp"
rm -rf "$tmp"
debootstrap --variant=minbase bookworm "$tmp" http://deb.debian.org/debian >/dev/null
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$tmp/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$tmp/usr/local/share/ca-certificates/"
fi
rm -rf "$tmp"/var/cache/apt/archives/*.deb
mv "$tmp" "$dir"
