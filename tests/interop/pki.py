"""Certificates for the interop lab: a test CA, a CA nobody trusts, and leaves.

Every leaf uses the ordinary Web PKI profile that Postfix, nginx, OpenSSL,
testssl.sh and sslscan all accept: SAN dNSNames (not critical), subject CN =
first name, BasicConstraints CA:FALSE (critical), KeyUsage digitalSignature +
keyEncipherment (critical; digitalSignature alone for EC keys),
ExtendedKeyUsage serverAuth, SKI/AKI. Leaf keys are RSA-2048, so the listeners
serve the RSA cipher suites a typical mail server has, and one listener adds
an EC P-256 leaf beside it (a dual-certificate server). One key of each type is
shared by all leaves: keys are expensive, certificates cheap.

Written independently of ``survey.testbed.pki`` on purpose: the interop suite
is the place where our scanner meets certificates our own code did not make.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = dt.timedelta(days=1)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "survey interop"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Authority:
    """A self-signed root that signs leaves."""

    name: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str) -> Authority:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder()
                .subject_name(_name(name)).issuer_name(_name(name))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - DAY).not_valid_after(now + 3650 * DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        return cls(name, key, cert)

    @property
    def pem(self) -> bytes:
        return _pem(self.cert)


LeafKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def leaf(names: list[str], key: LeafKey, issuer: Authority | None, *,
         not_before: dt.datetime | None = None,
         not_after: dt.datetime | None = None) -> x509.Certificate:
    """A server certificate for ``names``, signed by ``issuer`` (None: self-signed)."""
    now = dt.datetime.now(dt.UTC)
    subject = _name(names[0])
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - DAY)
               .not_valid_after(not_after or now + 365 * DAY)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                              critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True,
                                            key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                                            key_cert_sign=False, crl_sign=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                              critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


@dataclass(frozen=True)
class Served:
    """Files a daemon serves: the key, the chain (leaf first), and both in one file."""

    key_file: Path
    chain_file: Path
    combined_file: Path       # key then chain: Postfix's smtpd_tls_chain_files format


class LabPki:
    """The lab's certificates, written to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = Authority.create("survey interop test CA")
        self.rogue = Authority.create("survey interop untrusted CA")
        self.keys: dict[str, LeafKey] = {"rsa": _key(),
                                         "ec": ec.generate_private_key(ec.SECP256R1())}
        self.key_pems = {kind: key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())
                         for kind, key in self.keys.items()}
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.pem)
        self.key_files = {}
        for kind, pem in self.key_pems.items():
            self.key_files[kind] = directory / f"leaf-{kind}.key"
            self.key_files[kind].write_bytes(pem)

    def issue(self, label: str, names: list[str], kind: str = "valid",
              key: str = "rsa") -> Served:
        """A leaf of ``kind`` (valid, expired, self_signed, untrusted, or ``chain:NAME``, a
        chain kind of survey.testbed.chains) and its files."""
        now = dt.datetime.now(dt.UTC)
        leaf_key = self.keys[key]
        if kind.startswith("chain:"):
            return self._issue_chain(label, names[0], kind.removeprefix("chain:"))
        if kind == "valid":
            chain = [leaf(names, leaf_key, self.ca)]
        elif kind == "expired":
            chain = [leaf(names, leaf_key, self.ca, not_before=now - 400 * DAY,
                          not_after=now - 30 * DAY)]
        elif kind == "self_signed":
            chain = [leaf(names, leaf_key, None)]
        elif kind == "untrusted":
            chain = [leaf(names, leaf_key, self.rogue), self.rogue.cert]
        else:
            raise ValueError(f"unknown certificate kind {kind!r}")
        pem = b"".join(_pem(c) for c in chain)
        path = self.directory / f"{label}-{key}.pem"
        path.write_bytes(pem)
        combined = self.directory / f"{label}-{key}.combined.pem"
        combined.write_bytes(self.key_pems[key] + pem)
        return Served(self.key_files[key], path, combined)

    def _issue_chain(self, label: str, host: str, name: str) -> Served:
        """A chain kind (built, with its verdicts, by survey.testbed.chains: construction
        only, never survey.certs); its anchors join the lab's CA file."""
        from survey.testbed import chains

        built = chains.build(chains.kind(name, host).spec, self.now)
        for anchor in built.anchors:
            pem = _pem(anchor)
            if pem not in self.ca_file.read_bytes():
                with self.ca_file.open("ab") as f:
                    f.write(pem)
        key_pem = built.leaf_key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())
        key_file = self.directory / f"{label}.key"
        key_file.write_bytes(key_pem)
        path = self.directory / f"{label}.pem"
        path.write_bytes(built.sent_pem())
        combined = self.directory / f"{label}.combined.pem"
        combined.write_bytes(key_pem + built.sent_pem())
        return Served(key_file, path, combined)
