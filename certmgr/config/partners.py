"""The [[partner]] tables: the domains mail is sent to under an enforced TLS level."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import partial
from typing import Any

from certmgr.config.fields import check_refs, hostname_key, read_array, ref_list
from certmgr.config.model import (
    DEFAULT_PARTNER_LEVEL,
    PARTNER_DEPLOYERS,
    PARTNER_LEVELS,
    PartnerSpec,
    ProviderConfig,
)
from certmgr.config.toml import Loader, Table
from certmgr.options import did_you_mean
from certmgr.pki.names import NameError_, normalize_hostname

PARTNER_KEYS = frozenset({"domain", "require", "match", "deploy", "notify", "force"})


def parse_partners(sources: list[tuple[Loader, dict[str, Any]]], deploys: Mapping[str, ProviderConfig],
                    refs: Mapping[str, Collection[str]]) -> tuple[PartnerSpec, ...]:
    """The [[partner]] tables of every file; each wrong value is reported, the table left out."""
    specs = read_array(sources, "partner", "partner", "domain",
                       partial(_parse_partner, deploys=deploys, refs=refs),
                       lambda domain, first: f"duplicate partner {domain} (also the [[partner]] at {first})")
    return tuple(specs)


def _parse_partner(ld: Loader, raw: Any, index: int, *, deploys: Mapping[str, ProviderConfig],
                   refs: Mapping[str, Collection[str]]) -> PartnerSpec | None:
    t = Table(ld, raw, f"partner #{index}", allowed=PARTNER_KEYS)
    domain = t.check(partial(hostname_key, t, "domain"))
    require = t.check(partial(_partner_level, t), DEFAULT_PARTNER_LEVEL)
    none: tuple[str, ...] = ()
    match = t.check(partial(_partner_match, t, require), none)
    deploy = t.check(partial(_partner_deploy, t, deploys, refs["deploy"]), none)
    notify = t.check(partial(ref_list("notify"), t, refs), none)
    force = t.check(lambda: bool(t.get("force", bool, False)), False)
    if t.failed or domain is None:
        return None
    return PartnerSpec(domain, require, match, deploy, notify, force)


def _partner_level(t: Table) -> str:
    require: str = t.get("require", str, DEFAULT_PARTNER_LEVEL)
    if require not in PARTNER_LEVELS:
        raise t.err("require", f"must be one of {', '.join(PARTNER_LEVELS)} (Postfix TLS levels), got {require!r}"
                               f"{did_you_mean(require, PARTNER_LEVELS)}")
    return require


def _partner_match(t: Table, require: str) -> tuple[str, ...]:
    match: list[str] = []
    for name in t.str_list("match"):
        dot = "." if name.startswith(".") else ""
        try:
            match.append(dot + normalize_hostname(name[len(dot):]))
        except NameError_ as e:
            raise t.err("match", f"{e}") from e
    if match and require not in ("verify", "secure"):
        raise t.err("match", f"names certificates for verify or secure only, not for {require!r}")
    return tuple(match)


def _partner_deploy(t: Table, deploys: Mapping[str, ProviderConfig], defined: Collection[str]) -> tuple[str, ...]:
    deploy = t.str_list("deploy")
    check_refs(t, "deploy", deploy, defined)
    for target in deploy:
        if target in deploys and deploys[target].type not in PARTNER_DEPLOYERS:
            kind = deploys[target].type
            article = "an" if kind[:1] in "aeiou" else "a"
            raise t.err("deploy", f"[deploy.{target}] is {article} {kind} deployer; the TLS policy for "
                                  f"partners goes to an outbound MTA ({' or '.join(PARTNER_DEPLOYERS)})")
    return tuple(deploy)
