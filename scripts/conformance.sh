#!/usr/bin/env bash
# gatelet's malformed-request corpus (tests/vectors/) against gatelet, nginx and HAProxy side by
# side: installs nginx and HAProxy from Debian when missing, builds gatelet's release binary and
# runs scripts/conformance.py, which starts each server as this user from its own config file in
# a temporary directory, on 127.0.0.1 ports it picks (no system config is read or changed), and
# writes docs/conformance.md. About 15 seconds once built; loopback only.
# Options are conformance.py's (--out -, --only SUBSTRING, --servers, --jobs, --deadline,
# --no-half-close-pass); KEEP=1 keeps the work directory with the configs and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v haproxy >/dev/null || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >/dev/null  # a fresh machine may have no package lists yet
    # Debian starts the packaged service (nginx on port 80) on install; this script never uses it.
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
        # Newer Debian has no nginx-light: the plain package has the two modules used here.
        missing=("${missing[@]/nginx-light/nginx}")
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
cargo build --release --quiet
exec python3 scripts/conformance.py "$@"
