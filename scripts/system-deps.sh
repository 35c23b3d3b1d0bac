#!/usr/bin/env bash
# Install the Debian packages a make target needs, only those missing.
#   scripts/system-deps.sh run|test|train|compose
# `compose` (part of `test`): a Docker engine, docker-compose v1, debootstrap (local base
# images for the compose tier), iptables + nftables (its egress drop rule, and removing the
# tables dockerd made) and Debian's pip (wheels for the
# image's Debian python3, downloaded on the host). Installing docker.io
# never starts a daemon here: the compose tier starts and stops its own dockerd.
set -euo pipefail

compose_pkgs=(docker.io docker-compose debootstrap iptables nftables iproute2 python3-pip)

case "${1:-run}" in
  run)   pkgs=(redis-server python3-venv) ;;
  train) pkgs=(fonts-bebas-neue fonts-noto-cjk fonts-dejavu-core fonts-dejavu-extra) ;;
  test)  pkgs=(redis-server python3-venv chromium xvfb xauth libgl1-mesa-dri obs-studio ffmpeg
               prometheus fonts-bebas-neue fonts-noto-cjk fonts-dejavu-core fonts-dejavu-extra ngircd "${compose_pkgs[@]}") ;;
  compose) pkgs=("${compose_pkgs[@]}") ;;
  *) echo "usage: $0 run|test|train|compose" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "Missing system packages: ${missing[*]} — install them with your package manager." >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# docker.io's post-install would start a system dockerd where init scripts run: forbid starting
# services for this install (the compose tier runs its own engine and stops it).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
