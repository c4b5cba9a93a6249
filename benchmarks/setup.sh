#!/usr/bin/env bash
# What `make bench` needs besides the project's venv: the interop lab's daemons and
# peer scanners (tests/interop/setup.sh: Postfix, Unbound, nginx, testssl.sh, sslscan,
# openssl), NSD (the DNS benchmarks' server), and sslyze from PyPI in its own venv
# (.venv-peers: sslyze pins an older `cryptography` than the project's), and py-spy there.
# Installs with apt only as root; no system service is configured or started.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON=${PYTHON:-python3}

if [ "$(id -u)" -eq 0 ]; then
    bash tests/interop/setup.sh
    if ! dpkg-query -W -f='${Status}' nsd 2>/dev/null | grep -q "install ok installed"; then
        policy=/usr/sbin/policy-rc.d
        own_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy"
            chmod 755 "$policy"
            own_policy=1
        fi
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nsd >/dev/null || status=$?
        if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
        [ "${status:-0}" = 0 ]
    fi
else
    for tool in nsd postfix sslscan testssl openssl unbound nginx; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
            echo "benchmarks/setup.sh: $tool is missing and only root can install it" >&2
    done
fi

if [ ! -x .venv-peers/bin/sslyze ]; then
    "$PYTHON" -m venv .venv-peers
    .venv-peers/bin/python -m pip install -q --upgrade pip
    .venv-peers/bin/python -m pip install -q sslyze
fi
# py-spy (profile.py): a sampling profiler that reads the scanner from outside.
if [ ! -x .venv-peers/bin/py-spy ]; then
    .venv-peers/bin/python -m pip install -q py-spy
fi
