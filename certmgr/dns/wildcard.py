"""An MTA whose name is answered by a wildcard of its zone must not get TLSA records.

Publishing ``_25._tcp.mx1.example.com`` creates ``mx1.example.com`` as an empty non-terminal
(RFC 4592 section 2.2.2): the wildcard ``*.example.com`` no longer covers it, so its A and
AAAA lookups come back empty and mail to it stops.  `certmgr validate` asks the zone's
primary and warns before anything is published.
"""

from __future__ import annotations

from certmgr.dns.publisher import DnsPublisher


def wildcard_problem(publisher: DnsPublisher, hostname: str, port: int) -> str | None:
    """Why publishing TLSA records for ``hostname`` would break (or has broken) its address
    lookups, or None.  A name whose addresses are the wildcard's own (or that has none while a
    wildcard has some) is taken to be answered by the wildcard."""
    parent = hostname.partition(".")[2]
    if not parent:
        return None
    server = publisher.authoritative_servers()[0]
    for rdtype in ("A", "AAAA"):
        wild = publisher.query(server, f"*.{parent}", rdtype)
        if wild.error is not None or not wild.values:
            continue
        own = publisher.query(server, hostname, rdtype)
        if own.error is None and own.values in (wild.values, frozenset()):
            return (f"{hostname} has no {rdtype} record of its own: the wildcard *.{parent} answers for it, and "
                    f"publishing _{port}._tcp.{hostname} TLSA makes {hostname} an empty non-terminal the wildcard "
                    f"no longer covers, so its {rdtype} lookup fails; give {hostname} its own address records")
    return None
