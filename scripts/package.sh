#!/usr/bin/env bash
# Builds gatelet's Debian packages with cargo-deb (installed from crates.io when missing) and
# checks each one: the binary is for the package's architecture and answers --version (under
# qemu-user for ARM), the unit inside passes scripts/check-unit.sh, and the example configs and
# the conffile are there.
#
#   scripts/package.sh [ARCH...]      ARCH: amd64 (default), arm64, armhf, or all
#
# amd64 is built natively with the toolchain on PATH. The ARM packages are cross-built by
# scripts/cross.sh: arm64 carries the aarch64 build (Pi 3/4/5 and Zero 2 on a 64-bit OS), armhf
# the fully static armv5te build, which runs on every Pi from the Zero up under a 32-bit OS
# whatever its C library or float ABI. Their Depends are read off the binary: the highest
# GLIBC_ and GCC_ symbol versions it needs, nothing for the static one.
# Packages land in target/debian/ (amd64) and target/<triple>/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64)
[ "${archs[*]}" != all ] || archs=(amd64 arm64 armhf)
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
out=${CARGO_TARGET_DIR:-target}

# The Depends a dynamic binary needs: libc6 and libgcc-s1 at the versions of the newest symbols
# it uses. A static binary needs none.
depends_of() {
    local bin=$1 tools=$2 needed syms v deps=()
    needed=$("$tools-readelf" -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    syms=$("$tools-objdump" -T "$bin")
    for lib in $needed; do
        case "$lib" in
            libc.so.6 | ld-linux*) ;;
            libgcc_s.so.1)
                v=$(grep -o 'GCC_[0-9.]*' <<<"$syms" | sed 's/GCC_//' | sort -V | tail -1)
                deps+=("libgcc-s1 (>= ${v:-3.0})") ;;
            *) echo "package.sh: $bin needs $lib, which has no Debian package mapping here" >&2; exit 1 ;;
        esac
    done
    if grep -qx 'libc.so.6' <<<"$needed"; then
        v=$(grep -o 'GLIBC_[0-9.]*' <<<"$syms" | sed 's/GLIBC_//' | sort -V | tail -1)
        deps=("libc6 (>= $v)" "${deps[@]}")
    fi
    (IFS=,; echo "${deps[*]}" | sed 's/,/, /g')
}

# Rewrites a .deb's Architecture and Depends: cargo-deb names armv5te's architecture armel, and
# for a cross build it writes what the cross libc package says (libc6:arm64 (>= 2.36)), not what
# the binary needs.
set_control() {
    local deb=$1 arch=$2 depends=$3 work
    work=$(mktemp -d)
    dpkg-deb -R "$deb" "$work/pkg"
    sed -i -e "s/^Architecture: .*/Architecture: $arch/" -e '/^Depends:/d' "$work/pkg/DEBIAN/control"
    [ -z "$depends" ] || sed -i "/^Architecture:/a Depends: $depends" "$work/pkg/DEBIAN/control"
    rm -f "$deb"
    dpkg-deb --root-owner-group -Zxz -b "$work/pkg" "$(dirname "$deb")/" >/dev/null
    rm -rf "$work"
}

check() {
    local deb=$1 arch=$2 run=$3 machine=$4 work contents
    contents=$(dpkg-deb -c "$deb")
    for f in ./usr/bin/gatelet ./lib/systemd/system/gatelet.service ./etc/gatelet/krakend.json ./usr/share/doc/gatelet/examples/bus.json; do
        grep -q " $f\$" <<<"$contents" || { echo "missing $f in $deb"; exit 1; }
    done
    dpkg-deb -I "$deb" conffiles | grep -q /etc/gatelet/krakend.json
    [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || { echo "$deb: Architecture is not $arch"; exit 1; }
    work=$(mktemp -d)
    dpkg-deb -x "$deb" "$work"
    file -b "$work/usr/bin/gatelet" | grep -q "$machine" ||
        { echo "$deb: usr/bin/gatelet is not $machine: $(file -b "$work/usr/bin/gatelet")"; rm -rf "$work"; exit 1; }
    # shellcheck disable=SC2086 # $run is a command prefix (empty, or qemu and its options)
    $run "$work/usr/bin/gatelet" --version | grep -qx "gatelet $(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')"
    scripts/check-unit.sh "$work/lib/systemd/system/gatelet.service" >/dev/null
    rm -rf "$work"
    echo "$deb: $(stat -c %s "$deb") bytes; Architecture: $arch; Depends: $(dpkg-deb -f "$deb" Depends); binary $machine; unit, configs and conffile checked"
}

runner_of() { scripts/cross.sh --env "$1" | sed -n "s/^export CARGO_TARGET_.*_RUNNER='\(.*\)'/\1/p"; }

for arch in "${archs[@]}"; do
    case "$arch" in
        amd64)
            cargo deb --quiet
            deb=$(ls -t "$out"/debian/gatelet_*_amd64.deb | head -1)
            check "$deb" amd64 "" "x86-64" ;;
        arm64)
            t=aarch64-unknown-linux-gnu
            scripts/cross.sh aarch64
            rm -f "$out/$t"/debian/gatelet_*.deb
            cargo deb --quiet --no-build --no-strip --target "$t" --output "$out/$t/debian/"
            deb=$(ls "$out/$t"/debian/gatelet_*.deb)
            set_control "$deb" arm64 "$(depends_of "$out/$t/release/gatelet" aarch64-linux-gnu)"
            deb=$(ls "$out/$t"/debian/gatelet_*.deb)
            check "$deb" arm64 "$(runner_of aarch64)" "ARM aarch64" ;;
        armhf)
            t=armv5te-unknown-linux-gnueabi
            scripts/cross.sh armv5te
            file -b "$out/$t/release/gatelet" | grep -q 'statically linked' || { echo "the armv5te build is not static"; exit 1; }
            rm -f "$out/$t"/debian/gatelet_*.deb
            cargo deb --quiet --no-build --no-strip --target "$t" --output "$out/$t/debian/"
            deb=$(ls "$out/$t"/debian/gatelet_*.deb)
            set_control "$deb" armhf ""
            deb=$(ls "$out/$t"/debian/gatelet_*.deb)
            # The Pi Zero's CPU (ARM1176, ARMv6) runs the package's binary.
            check "$deb" armhf "$(runner_of armv5te)" "ARM, EABI5" ;;
        *) echo "unknown architecture $arch (amd64, arm64, armhf, all)"; exit 2 ;;
    esac
done
