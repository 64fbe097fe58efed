"""The notice of new certificates for one MTA: how they came (issued, renewed, imported) and
where they went (deployed and verified, not yet, failed, or nowhere)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from datetime import datetime

from certmgr.interfaces import Message
from certmgr.notify.cert_status import CertStatus, Deployed, NewCert
from certmgr.notify.message_text import alg_label, build_message, certs_word, date_words, expiry_words, sort_key
from certmgr.times import utc_text


def success_message(new: Sequence[NewCert], deployed: Deployed, now: datetime) -> Message:
    """The notice of new certificates for one MTA, saying how they came and where they went."""
    new = sorted(new, key=lambda n: sort_key(n.facts))
    all_ = [n.facts for n in new]
    facts = all_[0]
    host = facts.hostname
    how = _how(new)
    until = date_words(min((f.not_after for f in all_ if f.not_after), default=None))
    status, where, severity, commands, label = _deployment_words(all_, deployed)
    subject = f"[certmgr] {host}: {certs_word(all_)} {how}, valid until {until}{status}"
    intro = [f"{'New TLS certificates' if len(all_) > 1 else 'A new TLS certificate'} for the mail server "
             f"{host} {'were' if len(all_) > 1 else 'was'} {how}."]
    for n in new:
        line = (f"The new {alg_label(n.facts, all_)}certificate (serial {n.facts.serial}) "
                f"expires {expiry_words(n.facts)}")
        if n.replaced_not_after is not None:
            line += f"; the previous one would have expired {utc_text(n.replaced_not_after)}"
        intro.append(line + ".")
    intro += where
    extra = {
        "old_not_after": next((n.replaced_not_after.isoformat() for n in new if n.replaced_not_after), None),
        "how": how,
        "deploy_targets": list(deployed.targets),
        "deploy_results": {t: r for t, (r, _) in deployed.results.items()},
    }
    return build_message(all_, "success", subject, intro, severity, now, extra, commands=commands, commands_label=label)


def _how(new: Sequence[NewCert]) -> str:
    if all(n.source == "import" for n in new):
        return "imported"
    if all(n.replaced_not_after is None for n in new):
        return "issued"
    return "renewed"


def _deployment_words(certs: Sequence[CertStatus], d: Deployed) -> tuple[str, list[str], str, list[str], str]:
    """(subject suffix, sentences, severity, commands, their label) saying where new certificates went."""
    host, cfg = shlex.quote(certs[0].hostname), shlex.quote(certs[0].config_path)
    it = "them" if len(certs) > 1 else "it"
    if not d.targets:
        files = [f"{f.key_alg}: {f.fullchain_path} (key {f.key_path})" for f in certs if f.fullchain_path]
        return (" - not deployed (no deploy target)",
                ["Not deployed anywhere: this MTA has no deploy target configured, so certmgr installed "
                 f"nothing. Install {it} yourself and reload the MTA."],
                "warning", files, "The files to install:")
    failed = {t: r for t, r in d.results.items() if t in d.targets and r[0] != "verified"}
    if failed:
        said = [f"NOT in service: the MTA keeps serving the previous certificate{'s' if len(certs) > 1 else ''}."]
        for t, (result, reason) in failed.items():
            what = {"rolled_back": "was rolled back", "blocked": "was blocked before install"}.get(result, "failed")
            said.append(f"Deployment to {t} {what}: {reason or result}.")
        said.append("certmgr tries again by itself; once the cause is fixed, deploy now with the command below.")
        return (" - NOT deployed (deployment failed)", said, "warning", [f"certmgr -c {cfg} deploy {host}"],
                f"To deploy {it} by hand:")
    pending = [t for t in d.targets if t not in d.results]
    if pending:
        return (" - not deployed yet",
                [f"Not deployed yet to {', '.join(pending)}: certmgr deploys {it} on its next run."],
                "info", [f"certmgr -c {cfg} deploy {host}"], "To deploy now:")
    return ("", [f"Deployed to {', '.join(d.targets)} and verified."],
            "info", [], "")
