#!/usr/bin/env bash
# Installs the real peers of the interop suite (tests/interop/): Postfix, Unbound
# and nginx (the daemons the tests start on loopback), testssl.sh and sslscan (the
# peer scanners the tests compare with); and openssl and curl, which other tests run
# as clients. Every test that needs one of these names this script when it skips
# (tests/requirements.py). Runs as root, non-interactively, and is
# quick when everything is already there.
#
# No system service is configured or started: debconf is preseeded with
# "No configuration" for Postfix, and a temporary policy-rc.d keeps apt from
# starting postfix, unbound or nginx. The tests run their own instances with
# their own configuration directories and stop them afterwards.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(postfix unbound nginx testssl.sh sslscan
          openssl curl bsdextrautils bsdmainutils procps bind9-dnsutils util-linux ca-certificates)
missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "tests/interop/setup.sh: must run as root to install: ${missing[*]}" >&2
    exit 1
fi

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# Keep apt from starting the daemons (exit 101: action forbidden), unless the
# machine already has its own policy, which we leave alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
