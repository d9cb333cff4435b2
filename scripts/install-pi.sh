#!/usr/bin/env bash
# Builds the Debian package that fits a Raspberry Pi, copies it there and installs it (the unit
# stays disabled until /etc/gatelet/krakend.json is the bus's own config).
#
#   scripts/install-pi.sh [--dry-run] user@host [armhf|arm64]
#
# Without an architecture it asks the Pi (`dpkg --print-architecture`):
#   armhf  Raspberry Pi OS 32-bit, any Pi from the Zero up: the static armv5te build
#   arm64  a 64-bit OS on a Pi 3/4/5 or Zero 2: the aarch64 build
# The packages come from scripts/package.sh (cross-built by scripts/cross.sh with Debian's own
# toolchain; see docs/pi.md). --dry-run builds and names the package, but copies nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=
[ "${1:-}" != --dry-run ] || { dry=1; shift; }
host=${1:?"usage: scripts/install-pi.sh [--dry-run] user@host [armhf|arm64]"}
arch=${2:-$(ssh "$host" dpkg --print-architecture)}
case "$arch" in
    armhf) triple=armv5te-unknown-linux-gnueabi ;;
    arm64) triple=aarch64-unknown-linux-gnu ;;
    *) echo "$host is $arch: gatelet packages exist for armhf and arm64 (and amd64: scripts/package.sh)"; exit 2 ;;
esac
scripts/package.sh "$arch"
deb=$(ls -t target/"$triple"/debian/gatelet_*_"$arch".deb | head -1)
if [ -n "$dry" ]; then
    echo "would install $deb on $host"
    exit 0
fi
scp "$deb" "$host:/tmp/gatelet.deb"
ssh "$host" 'sudo apt-get install -y /tmp/gatelet.deb && rm /tmp/gatelet.deb && gatelet --version'
echo "installed. On the Pi: edit /etc/gatelet/krakend.json, 'gatelet check -c /etc/gatelet/krakend.json',"
echo "then 'sudo systemctl enable --now gatelet'."
