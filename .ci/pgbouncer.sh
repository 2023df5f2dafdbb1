#!/usr/bin/env bash
# Installs PgBouncer (Debian's package) when missing: the PgBouncer tests (tests/pgbouncer.py)
# start a private one; run by the nox sessions "tests" and "tests-pgbouncer". Only installs
# the binary: the package's own service is stopped and disabled if its install started it.
set -euo pipefail
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] \
        || [ -n "${ROMANCY_PGBOUNCER:-}" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "pgbouncer is missing: install it (e.g. apt-get install pgbouncer) or set" \
         "ROMANCY_PGBOUNCER; the PgBouncer tests skip locally and fail under CI" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
# the package may start its default instance (port 6432): the tests start their own
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now pgbouncer >/dev/null 2>&1 || true
elif [ -x /etc/init.d/pgbouncer ]; then
    /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
fi
