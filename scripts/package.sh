#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed from crates.io when missing) and checks
# what it holds: the binary, the unit, the example configs, the conffile.
# Usage: scripts/package.sh [extra cargo-deb arguments, e.g. --target armv7-unknown-linux-gnueabihf]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo deb --quiet "$@"
shopt -s nullglob
out=${CARGO_TARGET_DIR:-target}
debs=("$out"/debian/*.deb "$out"/*/debian/*.deb)
deb=$(ls -t "${debs[@]}" | head -1)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/gatelet ./lib/systemd/system/gatelet.service ./etc/gatelet/krakend.json ./usr/share/doc/gatelet/examples/bus.json; do
    grep -q " $f\$" <<<"$contents" || { echo "missing $f in $deb"; exit 1; }
done
dpkg-deb -I "$deb" conffiles | grep -q /etc/gatelet/krakend.json
echo "$deb: $(stat -c %s "$deb") bytes, contents checked"
