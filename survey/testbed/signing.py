"""A signed world's DNSSEC: zone keys, RRSIGs made on demand, NSEC proofs, the trust anchor.

Theory of operation
-------------------
A world with ``zones`` (model.py) is signed under its own root: the root
``""`` and ``test`` are signed zones, and each ``ZoneSpec`` below is a
delegation, signed or not, with or without a DS at its parent. Nothing is
signed when the world starts: each zone's key (Ed25519, algorithm 15, one
key as KSK and ZSK, flags 257) is derived from the world's seed and the
zone name when first needed, and each RRSIG is made when an RRset is first
served with the DO bit set, then kept. A 100,000-domain world therefore
starts as fast as an unsigned one; a scan pays one signature per RRset it
asks for.

Signatures are valid from a day before the server started to 30 days after;
``DnsNode.dnssec_fault`` breaks them on purpose: ``expired`` (valid until 10
days ago), ``not_yet_valid`` (from 10 days on: beyond validators' clock-skew
allowances), ``altered`` (the signature is
over different data: the record was changed after signing), ``unsigned`` (no
RRSIG). ``ZoneSpec.fault = ds_mismatch`` publishes a DS whose digest matches
no key of the zone.

Denial of existence is RFC 4470 on-line signing: NODATA gets an NSEC at the
name listing its types; NXDOMAIN gets a minimally covering NSEC around the
next closer name and one around the wildcard at the closest encloser, so no
existing name is ever covered (a validator's aggressive NSEC cache, RFC
8198, stays right). The trust anchor (the root's DS) is ``anchor_text()``;
``survey world --serve`` writes it into world.json.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rrset
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dns.rdtypes.ANY.DNSKEY import DNSKEY

from survey.testbed.model import World

if TYPE_CHECKING:
    from survey.testbed.pki import Pki

ALGORITHM = dns.dnssec.Algorithm.ED25519
DAY = 86400
SOA_TEXT = "ns.test. hostmaster.test. 1 3600 600 86400 300"
SOA = dns.rdata.from_text("IN", "SOA", SOA_TEXT)
NS = dns.rdata.from_text("IN", "NS", "ns.test.")


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text) if text else dns.name.root


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else ""


def parent_of(name: str) -> str:
    return name.split(".", 1)[1] if "." in name else ""


class Signer:
    """Keys, signatures and denial proofs of one world (lazy; cached)."""

    def __init__(self, world: World, now: float | None = None) -> None:
        self.world = world
        self.zones = world.zones
        start = int(now if now is not None else time.time())
        self.window = (start - DAY, start + 30 * DAY)
        self._keys: dict[str, tuple[Ed25519PrivateKey, DNSKEY]] = {}
        self._sigs: dict[tuple[Any, ...], dns.rrset.RRset | None] = {}
        self.signatures = 0

    # -- zones ------------------------------------------------------------------------------

    def zone_of(self, name: str) -> str:
        """The closest enclosing zone of a name (lower-case, no trailing dot)."""
        candidate = name
        while candidate:
            if candidate in self.zones:
                return candidate
            candidate = parent_of(candidate)
        return ""

    def signed(self, zone: str) -> bool:
        spec = self.zones.get(zone)
        return spec is None or spec.signed if zone else True

    def key(self, zone: str) -> tuple[Ed25519PrivateKey, DNSKEY]:
        found = self._keys.get(zone)
        if found is None:
            seed = hashlib.sha256(f"survey-world-key:{self.world.seed}:{self.world.profile}:"
                                  f"{zone}".encode()).digest()
            private = Ed25519PrivateKey.from_private_bytes(seed)
            dnskey = dns.dnssec.make_dnskey(private.public_key(), ALGORITHM, flags=257)
            found = self._keys[zone] = (private, dnskey)
        return found

    def ds(self, zone: str) -> dns.rdata.Rdata | None:
        """The DS the parent of ``zone`` publishes (None: an unsigned delegation)."""
        spec = self.zones.get(zone)
        if spec is None or not spec.ds or not spec.signed:
            return None
        ds = dns.dnssec.make_ds(_name(zone), self.key(zone)[1], "SHA256")
        if spec.fault == "ds_mismatch":
            digest = bytes(b ^ 0x5A for b in ds.digest)
            return dns.rdata.from_text("IN", "DS", f"{ds.key_tag} {ds.algorithm} "
                                       f"{ds.digest_type} {digest.hex()}")
        return ds

    def anchor_text(self) -> str:
        """The world's trust anchor: the DS of its root key, in zone-file form."""
        ds = dns.dnssec.make_ds(dns.name.root, self.key("")[1], "SHA256")
        return f". IN DS {ds.to_text()}\n"

    # -- signatures -------------------------------------------------------------------------

    def rrsig(self, rrset: dns.rrset.RRset, zone: str, fault: str | None
              ) -> dns.rrset.RRset | None:
        """The RRSIG RRset over ``rrset`` by ``zone`` (None: unsigned zone or fault)."""
        if not self.signed(zone) or fault == "unsigned":
            return None
        # One RRset per (name, type) in a world: its signature is kept under that key.
        key = (rrset.name, rrset.rdtype, zone, fault)
        if key in self._sigs:
            return self._sigs[key]
        inception, expiration = self.window
        start = inception + DAY
        # Planted faults lie 10 days outside the validity window: beyond any validator's
        # clock-skew allowance (Unbound accepts up to a day, val-sig-skew-max).
        if fault == "expired":
            inception, expiration = start - 40 * DAY, start - 10 * DAY
        elif fault == "not_yet_valid":
            inception, expiration = start + 10 * DAY, start + 40 * DAY
        signed = rrset
        if fault == "altered":      # sign what the record said before it was changed
            signed = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
            for rd in rrset:
                signed.add(rd, rrset.ttl)
            signed.add(_altered(rrset.rdtype), rrset.ttl)
        private, dnskey = self.key(zone)
        sig = dns.dnssec.sign(signed, private, _name(zone), dnskey, inception=inception,
                              expiration=expiration)
        self.signatures += 1
        out = dns.rrset.RRset(rrset.name, rrset.rdclass, dns.rdatatype.RRSIG, rrset.rdtype)
        out.add(sig, rrset.ttl)
        self._sigs[key] = out
        return out

    # -- denial -----------------------------------------------------------------------------

    def nsec(self, owner: dns.name.Name, next_name: dns.name.Name, types: AbstractSet[int]
             ) -> dns.rrset.RRset:
        present = {dns.rdatatype.RdataType.make(t) for t in types}
        present |= {dns.rdatatype.RRSIG, dns.rdatatype.NSEC}
        windows = dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes(sorted(present))
        rd = dns.rdtypes.ANY.NSEC.NSEC(  # type: ignore[no-untyped-call]  # dnspython's own
            dns.rdataclass.IN, dns.rdatatype.NSEC, next_name, windows)
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.NSEC)
        rrset.add(rd, 300)
        return rrset

    def nodata(self, name: str, types: AbstractSet[int]) -> dns.rrset.RRset:
        owner = _name(name)
        return self.nsec(owner, successor(owner), types)

    def nxdomain(self, qname: str, encloser: str) -> list[dns.rrset.RRset]:
        """NSECs proving ``qname`` absent below its closest encloser (RFC 4470)."""
        q, ce = _name(qname), _name(encloser)
        next_closer = dns.name.Name(q.labels[len(q) - len(ce) - 1:])
        star = dns.name.Name((b"*",) + ce.labels)
        out = [self.nsec(predecessor(next_closer), successor_sibling(next_closer), set())]
        if star != next_closer:
            out.append(self.nsec(predecessor(star), successor_sibling(star), set()))
        return out


_ALTERED = {dns.rdatatype.A: "192.0.2.1", dns.rdatatype.AAAA: "2001:db8::1",
            dns.rdatatype.MX: "10 altered.invalid.", dns.rdatatype.TXT: '"altered"',
            dns.rdatatype.CNAME: "altered.invalid.", dns.rdatatype.TLSA: "3 1 1 " + "00" * 32}


def _altered(rdtype: int) -> dns.rdata.Rdata:
    """A record the RRset did not have: signed along, it breaks the signature."""
    text = _ALTERED.get(dns.rdatatype.RdataType.make(rdtype), "\\# 1 00")
    return dns.rdata.from_text("IN", dns.rdatatype.RdataType.make(rdtype), text)


def _wire_length(labels: Iterable[bytes]) -> int:
    return sum(len(label) + 1 for label in labels)


def successor(name: dns.name.Name) -> dns.name.Name:
    """The name right after ``name`` in canonical order: its first possible child."""
    if _wire_length(name.labels) + 2 > 255:
        return successor_sibling(name)
    return dns.name.Name((b"\x00",) + name.labels)


def successor_sibling(name: dns.name.Name) -> dns.name.Name:
    """A name after ``name`` and every name below it, with nothing else in between."""
    first = bytes(name.labels[0])
    if len(first) < 63:
        return dns.name.Name((first + b"\x00",) + name.labels[1:])
    return dns.name.Name((first[:-1] + bytes([min(first[-1] + 1, 255)]),) + name.labels[1:])


def predecessor(name: dns.name.Name) -> dns.name.Name:
    """A name just before ``name`` (RFC 4470 §4.1: the last octet of the first label
    decremented, padded with 0xff octets, so no real name lies in between)."""
    first, rest = bytes(name.labels[0]), name.labels[1:]
    room = 255 - _wire_length(rest) - 1
    last = first[-1]
    if last == 0:
        label = first[:-1]
        if not label:
            return dns.name.Name(rest)
    else:
        label = first[:-1] + bytes([last - 1])
        label += b"\xff" * max(0, min(63, room) - len(label))
    return dns.name.Name((label,) + rest)


# TLSA association data a world names instead of spelling (the keys are made per process,
# pki.py): DANE-EE "3 1 1" of each shared leaf key, DANE-TA "2 1 1" of the intermediate CA.
TLSA_PLACEHOLDERS = ("@leaf-ec", "@leaf-rsa", "@intermediate")


class tlsa_placeholders:  # noqa: N801 - a mapping made lazily (RSA keys cost ~0.5 s)
    """``@name`` -> SHA-256 of the SubjectPublicKeyInfo it names, hex (RFC 6698 §2.1.3)."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self._values: dict[str, str] = {}

    def get(self, name: str, default: str | None = None) -> str | None:
        if name not in self._values:
            if name == "@intermediate":
                key = self.pki.intermediate.cert.public_key()
            elif name in ("@leaf-ec", "@leaf-rsa"):
                key = self.pki.leaf_key(name[len("@leaf-"):]).public_key()
            else:
                return default
            from cryptography.hazmat.primitives import serialization

            der = key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
            self._values[name] = hashlib.sha256(der).hexdigest()
        return self._values[name]
