"""Export a world's DNS as RFC 1035 zone files, so a real DNS server can serve it.

The whole world lives in one zone, ``test.`` (every domain is a name in it;
no delegations are needed on loopback), written to ``zones/test.zone`` with
absolute owner names. Next to it:

  * ``nsd.conf``     — an NSD ``zone:`` block (also fine for Knot's syntax
                       with trivial renaming);
  * ``unbound.conf`` — an Unbound ``server:`` snippet serving the zone file as
                       an ``auth-zone`` (``test.`` is one of Unbound's default
                       blocked zones, hence ``local-zone: "test." nodefault``),
                       plus ``local-zone`` overrides for the faults Unbound can
                       express: ``refuse`` (REFUSED), ``deny`` (no answer) and
                       ``always_nxdomain``.

What a zone file cannot say is listed as comments in both outputs: SERVFAIL,
truncation (the world's own server sets TC for marked names; a real server
only truncates large answers), and faults limited to some query types (Unbound
applies a ``local-zone`` fault to every type at the name).
"""

from __future__ import annotations

from pathlib import Path

from survey.testbed.model import TLD, DnsNode, World

ZONE_FILE = f"{TLD}.zone"
_UNBOUND_FAULTS = {"refused": "refuse", "timeout": "deny", "nxdomain": "always_nxdomain"}


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def zone_text_lines(world: World):
    """The lines of the ``test.`` zone file (a generator: worlds can be large)."""
    yield f"; survey testbed world: seed {world.seed}, profile {world.profile}"
    yield f"$ORIGIN {TLD}."
    yield "$TTL 300"
    apex = world.dns.get(TLD)
    ordered = [apex] if apex else []
    ordered += [n for name, n in world.dns.items() if name != TLD]
    for node in ordered:
        if node.fault:
            types = ",".join(node.fault_types) or "all types"
            yield f"; fault {_fqdn(node.name)} {node.fault} ({types})"
        for r in node.records:
            if r.rtype == "TLSA" and r.value.rsplit(" ", 1)[-1].startswith("@"):
                # data naming a key of the serving process (signing.tlsa_placeholders)
                yield f"; {_fqdn(node.name)} {r.ttl} IN TLSA {r.value} (made when served)"
                continue
            yield f"{_fqdn(node.name)} {r.ttl} IN {r.rtype} {r.value}"


def unbound_conf(world: World, zone_path: Path) -> str:
    lines = [
        "# Unbound snippet serving a survey testbed world (include it under server:).",
        "server:",
        f"    interface: {world.resolver}",
        f"    port: {world.ports.dns}",
        "    do-not-query-localhost: no",
        f'    local-zone: "{TLD}." nodefault',
    ]
    skipped = []
    for node in world.dns.values():
        if not node.fault:
            continue
        kind = _UNBOUND_FAULTS.get(node.fault)
        if kind is None:
            skipped.append(node)
            continue
        lines.append(f'    local-zone: "{_fqdn(node.name)}" {kind}'
                     + (f"  # only {','.join(node.fault_types)} in the world"
                        if node.fault_types else ""))
    lines += ["", "auth-zone:", f'    name: "{TLD}."', f'    zonefile: "{zone_path}"',
              "    for-downstream: yes", "    for-upstream: no", ""]
    lines += _unexpressed(skipped)
    return "\n".join(lines) + "\n"


def nsd_conf(world: World, zone_path: Path) -> str:
    lines = [
        "# NSD snippet serving a survey testbed world.",
        "server:",
        f"    ip-address: {world.resolver}@{world.ports.dns}",
        "zone:",
        f'    name: "{TLD}"',
        f'    zonefile: "{zone_path}"',
        "",
    ]
    lines += _unexpressed([n for n in world.dns.values() if n.fault])
    return "\n".join(lines) + "\n"


def _unexpressed(nodes: list[DnsNode]) -> list[str]:
    if not nodes:
        return []
    out = ["# Faults this server cannot reproduce (the world's own DNS server does):"]
    out += [f"#   {_fqdn(n.name)} {n.fault} ({','.join(n.fault_types) or 'all types'})"
            for n in nodes]
    return out


def write_zones(world: World, directory: str | Path) -> dict[str, str]:
    """Write ``test.zone``, ``nsd.conf`` and ``unbound.conf``; returns their names."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    zone_path = directory / ZONE_FILE
    with open(zone_path, "w", encoding="ascii") as fh:
        fh.writelines(line + "\n" for line in zone_text_lines(world))
    absolute = zone_path.resolve()
    (directory / "unbound.conf").write_text(unbound_conf(world, absolute))
    (directory / "nsd.conf").write_text(nsd_conf(world, absolute))
    return {"zone": ZONE_FILE, "origin": f"{TLD}.", "unbound": "unbound.conf",
            "nsd": "nsd.conf"}
