#!/usr/bin/env bash
# Cross-builds gatelet for a Raspberry Pi, packages it, copies the .deb to the Pi and installs
# it there (the unit stays disabled until /etc/gatelet/krakend.json is the bus's own config).
#
#   scripts/install-pi.sh zero   pi@bus-17.local   # Pi Zero / Zero W / Pi 1: armv6
#   scripts/install-pi.sh 2      pi@bus-17.local   # Pi 2: armv7
#   scripts/install-pi.sh 64     pi@bus-17.local   # Pi 3/4/5/Zero 2 on a 64-bit OS: aarch64
#
# Needs rustup (to add the target) and, for the C/assembly parts of ring (TLS, JWT), a C cross
# compiler: cargo-zigbuild with Zig covers all three targets, including armv6, which Debian's
# gcc-arm-linux-gnueabihf does not (it emits armv7 code). Not run in gatelet's CI: the sandbox
# there cannot download Rust targets.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?"which Pi: zero | 2 | 64"}
host=${2:?"where: user@host"}
case "$model" in
    zero) target=arm-unknown-linux-gnueabihf ;;
    2) target=armv7-unknown-linux-gnueabihf ;;
    64) target=aarch64-unknown-linux-gnu ;;
    *) echo "unknown model $model (zero, 2, 64)"; exit 2 ;;
esac
rustup target add "$target"
command -v cargo-zigbuild >/dev/null || cargo install cargo-zigbuild --locked
command -v zig >/dev/null || python3 -m pip install --user ziglang
# glibc 2.31 matches Raspberry Pi OS bullseye and later.
cargo zigbuild --release --target "$target.2.31"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo deb --no-build --target "$target"
deb=$(ls -t target/"$target"/debian/*.deb | head -1)
scp "$deb" "$host:/tmp/gatelet.deb"
ssh "$host" 'sudo apt-get install -y /tmp/gatelet.deb && rm /tmp/gatelet.deb && gatelet --version'
echo "installed. On the Pi: edit /etc/gatelet/krakend.json, 'gatelet check -c /etc/gatelet/krakend.json',"
echo "then 'sudo systemctl enable --now gatelet'."
