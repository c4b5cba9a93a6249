"""What each Postfix listener was configured to serve, worked out without our scanner.

The versions come from the listener's ``smtpd_tls_protocols``; the suites per
version from OpenSSL itself: ``openssl ciphers -s -<version> -stdname -v LIST``
expands the listener's cipher list (the same OpenSSL library Postfix links)
into the suites usable at that version, which are then narrowed to those the
listener's certificates can authenticate (RSA, ECDSA for the dual-certificate
listener, and the anonymous suites Postfix's opportunistic lists keep) -- no
PSK or SRP, which need secrets the server does not have. TLS 1.3 suites are
OpenSSL's defaults unless the listener's OpenSSL configuration narrows them.

Postfix lowers OpenSSL's security level itself for opportunistic TLS
(``SSL_CTX_set_security_level``), so with Postfix 3.7 on OpenSSL 3 its
defaults already serve TLS 1.0 and 1.1; ``@SECLEVEL=0`` in a listener's list
changes nothing there (it matters for Python's ``ssl`` servers and clients).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache

from tests.interop.lab import (
    ANON_CIPHERS,
    LEGACY_CIPHERS,
    LISTENERS,
    POSTFIX_MEDIUM,
    RESTRICTED_TLS12,
    RESTRICTED_TLS13,
    Listener,
)
from tests.requirements import require

ALL_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
OPENSSL_FLAG = {"TLSv1.0": "-tls1", "TLSv1.1": "-tls1_1", "TLSv1.2": "-tls1_2"}
OPENSSL_DEFAULT_TLS13 = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                         "TLS_AES_128_GCM_SHA256")
NO_SECRET_KX = ("PSK", "SRP", "RSAPSK", "DHEPSK", "ECDHEPSK")
TLS_LISTENERS = [listener for listener in LISTENERS if listener.tls not in ("none", "reject")]


@dataclass(frozen=True)
class Configured:
    versions: tuple[str, ...]
    suites: dict[str, tuple[str, ...]]     # version -> IANA names (in preference order
    server_order: bool                     # when the server enforces its own)

    def suite_set(self) -> set[tuple[str, str]]:
        return {(v, s) for v, names in self.suites.items() for s in names}


@cache
def openssl_suites(cipher_list: str, version: str, auths: frozenset[str]) -> tuple[str, ...]:
    """IANA names OpenSSL expands ``cipher_list`` to at ``version``, in list order."""
    # Postfix sets security level 0 on its contexts; `openssl ciphers -s` would apply
    # the library default (which drops the anonymous suites) unless told the same.
    require("openssl")
    if "@SECLEVEL=" not in cipher_list:
        cipher_list += ":@SECLEVEL=0"
    out = subprocess.run(["openssl", "ciphers", "-s", OPENSSL_FLAG[version], "-stdname", "-v",
                          cipher_list], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    names = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[3] == "TLSv1.3":
            continue
        facts = dict(f.split("=", 1) for f in fields[4:] if "=" in f)
        if facts.get("Au") in auths and facts.get("Kx") not in NO_SECRET_KX:
            names.append(fields[0])
    return tuple(names)


def configured(listener: Listener) -> Configured | None:
    """None for listeners that never reach TLS (no STARTTLS, 554 greeting)."""
    if listener not in TLS_LISTENERS:
        return None
    auths = frozenset({"None", *("RSA" if k == "rsa" else "ECDSA"
                                 for k in listener.key_types)})
    if listener.tls == "restricted":
        tls12 = openssl_suites(RESTRICTED_TLS12, "TLSv1.2", auths)
        return Configured(("TLSv1.2", "TLSv1.3"),
                          {"TLSv1.2": tls12, "TLSv1.3": tuple(RESTRICTED_TLS13.split(":"))},
                          server_order=True)
    if listener.tls == "anon":
        versions = ("TLSv1.0", "TLSv1.1", "TLSv1.2")
        return Configured(versions, {v: openssl_suites(ANON_CIPHERS, v, auths) for v in versions},
                          server_order=True)
    versions = ("TLSv1.2", "TLSv1.3") if listener.tls == "modern" else ALL_VERSIONS
    cipher_list = LEGACY_CIPHERS if listener.tls == "legacy" else POSTFIX_MEDIUM
    suites = {v: openssl_suites(cipher_list, v, auths) for v in versions if v != "TLSv1.3"}
    suites["TLSv1.3"] = OPENSSL_DEFAULT_TLS13
    return Configured(versions, suites, server_order=False)

