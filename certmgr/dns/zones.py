"""Whether the records certmgr would publish lie inside the ``[dns.NAME]`` zone meant to hold them.

A zone that does not hold the owner name refuses every update (NOTZONE), so an MTA whose
``dane.publish`` (or an ``[mta_sts."domain"]`` whose ``dns``) names such a zone cannot work:
``certmgr validate`` says so instead of the first renewal."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from certmgr.config.model import Config
from certmgr.errors import ConfigError


def in_zone(owner: str, zone: str) -> bool:
    """``owner`` is ``zone`` or below it (case-insensitive, trailing dots ignored)."""
    owner, zone = owner.rstrip(".").lower(), zone.rstrip(".").lower()
    return owner == zone or owner.endswith("." + zone)


def zone_errors(config: Config, zone_of: Callable[[str], str]) -> Iterator[ConfigError]:
    """One error per owner name outside the zone of the ``[dns.NAME]`` table it is published in;
    ``zone_of(NAME)`` is that table's zone."""
    for mta in config.mtas:
        if mta.dane_publish is None:
            continue
        name = mta.dane_publish.publish
        owner, zone = f"_{mta.smtp_port}._tcp.{mta.hostname}", zone_of(name)
        if not in_zone(owner, zone):
            yield ConfigError(
                f"zone {zone!r} does not hold {owner}, where [[mta]] {mta.hostname} publishes its TLSA records "
                f"(dane.publish = {name!r}); set zone to the zone that holds {mta.hostname}, or publish them "
                f"through another [dns.*] table", table=f"dns.{name}", key="zone")
    for domain, sts in config.mta_sts.items():
        owner, zone = f"_mta-sts.{domain}", zone_of(sts.dns)
        if not in_zone(owner, zone):
            yield ConfigError(
                f"zone {zone!r} does not hold {owner}, where [mta_sts.\"{domain}\"] publishes its policy id "
                f"(dns = {sts.dns!r}); set zone to the zone that holds {domain}, or use another [dns.*] table",
                table=f"dns.{sts.dns}", key="zone")
