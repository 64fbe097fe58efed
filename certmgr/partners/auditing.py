"""``certmgr audit``: read each managed MTA's effective TLS settings through its deploy
targets and judge them (:mod:`certmgr.partners.audit`); probe it from several source
addresses and say when STARTTLS is offered to some and not to others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from certmgr.config.model import Config, MtaConfig
from certmgr.errors import CertmgrError
from certmgr.partners.audit import (
    DOVECOT_SETTINGS,
    POSTFIX_SETTINGS,
    Finding,
    audit_dovecot,
    audit_exim,
    audit_postfix,
    parse_settings,
    starttls_problem,
)
from certmgr.probe.assess import CRITICAL, OK, WARNING
from certmgr.probe.client import probe

_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}


def source_findings(mta: MtaConfig, sources: Sequence[str], timeout: float = 10.0) -> list[Finding]:
    """STARTTLS offered to some source addresses and not to others (the MTA treats clients by address)."""
    if len(sources) < 2:
        return []
    offered = {}
    for src in sources:
        r = probe(mta.smtp_host, mta.smtp_port, protocol=mta.probe_protocol, implicit_tls=mta.probe_implicit_tls,
                  servername=mta.hostname, timeout=timeout, source=src)
        offered[src] = None if r.unreachable else r.starttls
    yes = [s for s, v in offered.items() if v]
    no = [s for s, v in offered.items() if v is False]
    if yes and no:
        return [Finding(CRITICAL, f"{mta.hostname} ({mta.smtp_host}:{mta.smtp_port}) offers STARTTLS to clients from "
                                  f"{', '.join(yes)} but not to clients from {', '.join(no)}")]
    return []


def dovecot_probe(mta: MtaConfig, timeout: float = 10.0) -> list[Finding]:
    """Is STARTTLS really offered on the MTA's IMAP/POP3 port (implicit TLS ports need no STARTTLS)?"""
    if mta.probe_implicit_tls or mta.probe_protocol == "smtp":
        return []
    r = probe(mta.smtp_host, mta.smtp_port, protocol=mta.probe_protocol, servername=mta.hostname, timeout=timeout)
    found = starttls_problem(f"{mta.hostname} ({mta.smtp_host}:{mta.smtp_port})", mta.probe_protocol, r.starttls,
                             r.unreachable, r.error)
    return [found] if found else []


def key_algs(mta: MtaConfig) -> list[str]:
    return ["rsa" if k.startswith("rsa") else "ecdsa" for k in mta.key_types]


def audit_mta(cfg: Config, mta: MtaConfig, deployer: Callable[[str], Any], sources: Sequence[str]) -> dict[str, Any]:
    """The ``audit --json`` object of one MTA."""
    found: list[Finding] = []
    for target in mta.deploy:
        kind = cfg.deploys[target].type
        d = deployer(target)
        where = f"{mta.hostname} [deploy.{target}]"
        try:
            if kind == "postfix":
                found += audit_postfix(d.effective_settings(POSTFIX_SETTINGS), where=where, hostname=mta.hostname,
                                       managed=d.cert_files(mta.hostname, key_algs(mta)), read=d.read_file)
            elif kind == "exim":
                main, transports = d.effective_settings()
                found += audit_exim(parse_settings(main), {n: parse_settings(t) for n, t in transports.items()},
                                    where=where, hostname=mta.hostname,
                                    managed=d.cert_files(mta.hostname, key_algs(mta)), read=d.read_file)
            elif kind == "dovecot":
                found += audit_dovecot(d.effective_settings(DOVECOT_SETTINGS), where=where,
                                       managed=d.cert_files(mta.hostname, key_algs(mta)))
                found += dovecot_probe(mta)
        except CertmgrError as e:
            found.append(Finding(WARNING, f"{where}: the effective settings cannot be read: {e}"))
    found += source_findings(mta, sources)
    status = max((f.severity for f in found), key=_RANK.__getitem__, default=OK)
    return {"hostname": mta.hostname, "targets": list(mta.deploy), "status": status,
            "problems": [f.text for f in found]}
