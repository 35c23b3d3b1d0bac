#!/usr/bin/env bash
# Install the Debian packages a make target needs, only those missing.
#   scripts/system-deps.sh run|test|train
set -euo pipefail

case "${1:-run}" in
  run)   pkgs=(redis-server python3-venv) ;;
  train) pkgs=(fonts-bebas-neue fonts-noto-cjk fonts-dejavu-core fonts-dejavu-extra) ;;
  test)  pkgs=(redis-server python3-venv chromium xvfb xauth libgl1-mesa-dri obs-studio ffmpeg
               prometheus docker-compose fonts-bebas-neue fonts-noto-cjk fonts-dejavu-core fonts-dejavu-extra) ;;
  *) echo "usage: $0 run|test|train" >&2; exit 2 ;;
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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
