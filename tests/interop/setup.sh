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
# starting postfix, unbound, nsd or nginx. The tests run their own instances with
# their own configuration directories and stop them afterwards.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Exim for tests/interop/test_exim.py. Debian's exim4 packages conflict with Postfix as
# the machine's MTA, so they are unpacked, not installed: under /opt/survey-exim, run by
# the test with its own configuration on loopback through the wrapper survey-exim4 (the
# libraries it lacks, libidn12, come unpacked beside it). Exim's binary is built for the
# system user Debian-exim, which is created (no home, no shell) when missing.
install_exim() {
    local root=/opt/survey-exim wrapper=/usr/local/bin/survey-exim4
    [ -x "$wrapper" ] && [ -x "$root/usr/sbin/exim4" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/interop/setup.sh: must run as root to unpack Exim" >&2
        return 1
    fi
    local work
    work=$(mktemp -d)
    apt-get update -qq
    (cd "$work" && chmod 777 . && apt-get download -qq exim4-daemon-light exim4-base \
        exim4-config libidn12 >/dev/null)
    mkdir -p "$root"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    rm -rf "$work"
    id Debian-exim >/dev/null 2>&1 || useradd --system --no-create-home \
        --shell /usr/sbin/nologin Debian-exim
    local libdir
    libdir=$(dirname "$(find "$root/usr/lib" -name 'libidn.so.12*' | head -n 1)")
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s/usr/sbin/exim4 "$@"\n' \
        "$libdir" "$root" > "$wrapper"
    chmod 755 "$wrapper"
}

packages=(postfix unbound nsd ldnsutils nginx testssl.sh sslscan chromium
          openssl curl bsdextrautils bsdmainutils procps bind9-dnsutils util-linux ca-certificates)
missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    install_exim
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
install_exim
