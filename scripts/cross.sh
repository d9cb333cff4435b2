#!/usr/bin/env bash
# Cross-builds gatelet for Raspberry Pis with Debian 12's own Rust toolchain: no rustup target,
# nothing downloaded but Debian packages and crates. Idempotent: it installs what it lacks and
# then builds. What it builds and how the builds were tested: docs/pi.md.
#
#   scripts/cross.sh [TARGET...] [-- CARGO-BUILD-ARGS...]   release build(s), default: all three
#   scripts/cross.sh --cargo TARGET CMD [ARGS...]           any cargo command for TARGET, e.g.
#                                                           `--cargo armv7 test --test gateway`
#                                                           (tests then run under qemu-user)
#   scripts/cross.sh --env TARGET                           the environment it sets, as `export`s
#
# TARGET is a triple or its short name:
#   armv5te  armv5te-unknown-linux-gnueabi, fully static   Pi Zero/Zero W/1 and up (ARMv6 CPU)
#   armv7    armv7-unknown-linux-gnueabihf                   Pi 2/3/4 with a 32-bit OS
#   aarch64  aarch64-unknown-linux-gnu                       Pi 3/4/5, Zero 2 with a 64-bit OS
#
# The toolchain: Debian's rustc-web and cargo-web (1.96 in bookworm-security), whose std for
# armhf and arm64 comes from the libstd-rust-web-dev package of those architectures, fetched as
# a single file through a private apt configuration (the system's own repositories, read but
# never changed; no foreign architecture is added to dpkg) and unpacked under
# target/cross-tools/. Debian has no std for armel or ARMv6, so the armv5te build compiles std
# from rust-web-src (RUSTC_BOOTSTRAP=1 -Zbuild-std) in a target directory of its own,
# target/build-std/, and the binary is copied to target/armv5te-unknown-linux-gnueabi/release/.
# Linkers and C compilers (ring's C and assembly) are Debian's cross gcc. Tests run under
# qemu-user 10.0 from bookworm-backports, unpacked under target/cross-tools/ (see fetch_qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

triple_of() {
    case "$1" in
        armv5te | armv5te-unknown-linux-gnueabi) echo armv5te-unknown-linux-gnueabi ;;
        armv7 | armv7-unknown-linux-gnueabihf) echo armv7-unknown-linux-gnueabihf ;;
        aarch64 | arm64 | aarch64-unknown-linux-gnu) echo aarch64-unknown-linux-gnu ;;
        *) echo "unknown target '$1' (armv5te, armv7, aarch64)" >&2; return 2 ;;
    esac
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages on the build machine (amd64): the toolchain, std's source, cross gcc.
host_packages=(rustc-web cargo-web rust-web-src gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu
    gcc-arm-linux-gnueabi binutils-arm-linux-gnueabihf binutils-aarch64-linux-gnu)
install_host_packages() {
    local missing=() p
    for p in "${host_packages[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "cross.sh: installing ${missing[*]}" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Debian's rustc-web is 1.85 in bookworm and 1.96 in bookworm-security; gatelet's
    # rust-version is the floor.
    local want have
    want=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
    have=$(/usr/bin/rustc --version | awk '{print $2}')
    if ! printf '%s\n%s\n' "$want" "$have" | sort -V -C; then
        echo "cross.sh: Debian's rustc is $have, gatelet needs $want (bookworm-security must be in apt's sources)" >&2
        exit 1
    fi
}

tools=$root/target/cross-tools
std_version() { dpkg-query -W -f '${Version}' rustc-web; }
sysroot() { echo "$tools/std-$(std_version)"; }
qemu_dir() { echo "$tools/qemu"; }

# apt-get download through a private configuration: the system's own repositories, plus the
# backports suite of its main one, asked for armhf and arm64 indexes too, with lists and cache
# under target/. Neither dpkg's architectures nor apt's sources change.
#   fetch_debs DIR PACKAGE[:ARCH][=VERSION|/SUITE]...   (the .debs land in DIR)
fetch_debs() {
    local dir=$1 apt=$tools/apt codename main
    shift
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts" "$dir"
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    {
        apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' | sort -u |
            awk '{print "deb [arch=amd64,armhf,arm64] " $1 " " $2 " " $3}'
        main=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' | awk -v c="$codename" '$1 == c {print $2; exit}')
        [ -z "$main" ] || echo "deb [arch=amd64] $main $codename-backports main"
    } >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
        -o "APT::Architectures::=armhf" -o "APT::Architectures::=arm64"
        -o "APT::Sandbox::User=root" -qq)
    # One index download per run of this script is enough.
    [ -e "$apt/updated.$$" ] || { apt-get "${opts[@]}" update && touch "$apt/updated.$$"; }
    (cd "$dir" && apt-get "${opts[@]}" download "$@")
}

# std for armhf and arm64, the exact version of the installed rustc-web, as a sysroot that also
# links back to the host's std (build scripts and proc macros).
fetch_std() {
    local version sys debs deb
    version=$(std_version)
    sys=$(sysroot)
    [ -e "$sys/.complete" ] && return 0
    echo "cross.sh: fetching libstd-rust-web-dev $version for armhf and arm64" >&2
    rm -rf "$sys"
    debs=$tools/debs-std
    rm -rf "$debs"
    fetch_debs "$debs" "libstd-rust-web-dev:armhf=$version" "libstd-rust-web-dev:arm64=$version"
    mkdir -p "$sys/lib/rustlib"
    for deb in "$debs"/*.deb; do
        dpkg-deb -x "$deb" "$debs/x"
        mv "$debs"/x/usr/lib/rustlib/*-linux-* "$sys/lib/rustlib/"
        rm -rf "$debs/x"
    done
    ln -s /usr/lib/rustlib/x86_64-unknown-linux-gnu "$sys/lib/rustlib/x86_64-unknown-linux-gnu"
    ln -s /usr/lib/rustlib/src "$sys/lib/rustlib/src"
    rm -rf "$debs"
    touch "$sys/.complete"
}

# qemu-user from the backports suite (10.0 for bookworm), unpacked under target/, not installed.
# bookworm's own qemu-user-static (7.2) answers ENOSYS to the TCGETS2 ioctl, so rustix's
# termios calls fail instead of falling back to TCGETS, and no serial sensor opens under it;
# 10.0 answers ENOTTY, as a kernel without termios2 would.
fetch_qemu() {
    local q debs
    q=$(qemu_dir)
    [ -e "$q/.complete" ] && return 0
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    echo "cross.sh: fetching qemu-user from $codename-backports" >&2
    rm -rf "$q"
    debs=$tools/debs-qemu
    rm -rf "$debs"
    fetch_debs "$debs" "qemu-user/$codename-backports"
    dpkg-deb -x "$debs"/qemu-user_*.deb "$debs/x"
    mkdir -p "$q"
    mv "$debs/x/usr/bin/qemu-arm" "$debs/x/usr/bin/qemu-aarch64" "$q/"
    rm -rf "$debs"
    "$q/qemu-arm" --version | head -1 >"$q/.complete"
}

# The environment for one target, as `export` lines (eval'd below, printed by --env).
target_env() {
    local t=$1 T cc prefix cpu qemu flags
    T=$(echo "$t" | tr 'a-z-' 'A-Z_')
    cc=${t//-/_}
    case "$t" in
        armv5te-*) prefix=arm-linux-gnueabi qemu=qemu-arm cpu=arm1176
            flags="-C target-feature=+crt-static" ;;
        armv7-*) prefix=arm-linux-gnueabihf qemu=qemu-arm cpu=cortex-a7
            flags="--sysroot=$(sysroot)" ;;
        aarch64-*) prefix=aarch64-linux-gnu qemu=qemu-aarch64 cpu=cortex-a53
            flags="--sysroot=$(sysroot)" ;;
    esac
    echo "export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc"
    echo "export CARGO_TARGET_${T}_LINKER=$prefix-gcc CC_$cc=$prefix-gcc AR_$cc=$prefix-ar"
    echo "export CARGO_TARGET_${T}_RUSTFLAGS='$flags'"
    # The C library of a dynamic build is found under -L; the static build needs none.
    echo "export CARGO_TARGET_${T}_RUNNER='$(qemu_dir)/$qemu -cpu $cpu -L /usr/$prefix'"
    if [[ $t == armv5te-* ]]; then
        echo "export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$root/target/build-std"
    fi
}

# Cargo's own flags for a target: std built from source where Debian ships none.
cargo_flags() {
    case "$1" in armv5te-*) echo "-Zbuild-std=std,panic_abort" ;; esac
}

prepare() {
    install_host_packages
    fetch_std
    fetch_qemu
    rm -f "$tools"/apt/updated.*
}

if [ "${1:-}" = --env ]; then
    t=$(triple_of "${2:?--env TARGET}")
    prepare
    target_env "$t"
    exit 0
fi

if [ "${1:-}" = --cargo ]; then
    t=$(triple_of "${2:?--cargo TARGET CMD [ARGS...]}")
    cmd=${3:?--cargo TARGET CMD [ARGS...]}
    shift 3
    prepare
    eval "$(target_env "$t")"
    # shellcheck disable=SC2046 # cargo_flags prints zero or one word
    exec /usr/bin/cargo "$cmd" $(cargo_flags "$t") --locked --target "$t" "$@"
fi

targets=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    targets+=("$(triple_of "$1")")
    shift
done
[ "${1:-}" = -- ] && shift
[ ${#targets[@]} -gt 0 ] || targets=(armv5te-unknown-linux-gnueabi armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu)
prepare
for t in "${targets[@]}"; do
    start=$SECONDS
    (
        eval "$(target_env "$t")"
        # shellcheck disable=SC2046
        /usr/bin/cargo build $(cargo_flags "$t") --release --locked --target "$t" "$@"
        if [[ $t == armv5te-* ]]; then
            mkdir -p "target/$t/release"
            cp "target/build-std/$t/release/gatelet" "target/$t/release/gatelet"
        fi
    )
    echo "cross.sh: target/$t/release/gatelet: $(stat -c %s "target/$t/release/gatelet") bytes, built in $((SECONDS - start)) s"
done
