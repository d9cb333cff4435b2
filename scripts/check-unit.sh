#!/usr/bin/env bash
# Checks systemd/gatelet.service the way CI does: `systemd-analyze verify` must pass and
# `systemd-analyze security --offline=yes` must score 2.0 or better. The binary path is pointed
# at /bin/true for the check (verify wants an existing executable; the package installs the
# real one at /usr/bin/gatelet). Installs systemd from Debian when systemd-analyze is missing.
# Usage: scripts/check-unit.sh [UNIT-FILE]   (default systemd/gatelet.service; scripts/package.sh
# passes the unit it finds inside each package)
set -euo pipefail
unit=$(realpath "${1:-$(dirname "$0")/../systemd/gatelet.service}")
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq systemd >/dev/null; else sudo apt-get install -y -qq systemd >/dev/null; fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's#/usr/bin/gatelet#/bin/true#' "$unit" > "$work/gatelet.service"
systemd-analyze verify "$work/gatelet.service"
score=$(systemd-analyze security --offline=yes "$work/gatelet.service" 2>/dev/null | sed -n 's/.*Overall exposure level for gatelet.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: $score (must be <= 2.0)"
python3 -c "import sys; sys.exit(0 if float('$score') <= 2.0 else 1)"
