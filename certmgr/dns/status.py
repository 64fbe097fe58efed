"""What `certmgr status` and `certmgr check` show of the DANE rollover and MTA-STS of an MTA:
the recorded rows of the store (:mod:`certmgr.store.dns`), every MTA and domain read at once in
a fixed number of queries (:func:`snapshot`), without changing anything."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from certmgr.config.model import Config, MtaConfig
from certmgr.store.rows import Snapshot
from certmgr.times import utc_text

if TYPE_CHECKING:
    from certmgr.runtime import Runtime

NOTHING = Snapshot({}, {})


def snapshot(rt: Runtime) -> Snapshot:
    """Every recorded rollover and MTA-STS domain (no query when the config has neither)."""
    config = rt.config
    if not config.mta_sts and not any(m.dane_publish for m in config.mtas):
        return NOTHING
    return rt.rows.dns_snapshot(config.settings.state_dir)


def dane_state(recorded: Snapshot, mta: MtaConfig, now: datetime) -> dict[str, Any] | None:
    """The recorded TLSA rollover of an MTA with ``dane.publish`` (None without)."""
    if mta.dane_publish is None:
        return None
    text = recorded.rollovers.get(mta.hostname)
    if text is None:
        return {"publish": mta.dane_publish.publish, "step": "not started", "late": False}
    from certmgr.dns.rollover import Rollover  # cryptography: only for an MTA that publishes DANE

    st = Rollover.from_json(text)
    step = "waiting" if st.pending else "retiring" if st.retiring else "idle"
    since = datetime.fromisoformat(st.waiting_since) if st.waiting_since else None
    return {"publish": mta.dane_publish.publish, "owner": st.owner, "step": step, "ttl": st.ttl,
            "current": list(st.current), "next": list(st.next), "pending": list(st.pending),
            "retiring": list(st.retiring),
            "retire_after": st.retire_after, "visible_since": st.visible_since, "waiting_since": st.waiting_since,
            "late": bool(st.pending and since and now - since > timedelta(seconds=mta.dane_publish.late_after))}


def _mta_sts_domain(recorded: Snapshot, domain: str, mode: str) -> dict[str, Any]:
    text = recorded.mta_sts.get(domain)
    rec: dict[str, Any] = json.loads(text) if text is not None else {}
    return {"domain": domain, "mode": mode,
            "step": "published" if rec.get("policy_id") else "not started",
            "policy_id": rec.get("policy_id") or None,
            "web_in_step": bool(rec) and rec.get("web_policy_text") == rec.get("policy_text")}


def mta_sts_state(recorded: Snapshot, config: Config, hostname: str) -> list[dict[str, Any]]:
    """The ``[mta_sts."domain"]`` policies an MTA's hostname falls under, with what is recorded."""
    return [_mta_sts_domain(recorded, domain, sts.mode) for domain, sts in config.mta_sts.items()
            if hostname == domain or hostname.endswith("." + domain)]


Table = tuple[str, list[str], list[tuple[str, ...]]]


def text_tables(config: Config, rows: list[dict[str, Any]], recorded: Snapshot) -> list[Table]:
    """The DANE rollover per MTA and the MTA-STS state per domain, as (title, columns, rows)
    tables for `certmgr status` (empty when neither is configured)."""
    dane: dict[str, tuple[str, ...]] = {}
    for r in rows:
        d = r.get("dane")
        if not d or r["hostname"] in dane:
            continue
        counts = ", ".join(f"{len(d.get(k, []))} {k}" for k in ("current", "next", "pending", "retiring")
                           if d.get(k))
        since = utc_text(datetime.fromisoformat(d["waiting_since"])) if d.get("waiting_since") else "-"
        dane[r["hostname"]] = (r["hostname"], d.get("owner", "-"), d["step"], counts or "-", since,
                               "LATE: waiting on DNS" if d["late"] else "")
    domains = [_mta_sts_domain(recorded, domain, s.mode) for domain, s in config.mta_sts.items()]
    sts: list[tuple[str, ...]] = [(x["domain"], x["mode"], x["step"], x["policy_id"] or "-",
                                   "yes" if x["web_in_step"] else "no") for x in domains]
    out: list[Table] = []
    if dane:
        out.append(("DANE rollover", ["hostname", "TLSA owner", "step", "records", "waiting since", "late"],
                    list(dane.values())))
    if sts:
        out.append(("MTA-STS", ["domain", "mode", "step", "id", "policy served"], sts))
    return out


def add_rollover(report: dict[str, Any], config: Config, now: datetime, recorded: Snapshot) -> None:
    """Add the recorded TLSA rollover and MTA-STS state to a `check` report of a managed MTA;
    a rollover waiting on DNS for longer than expected is a warning."""
    from certmgr.probe.check import raise_status

    mta = config.mta(report["hostname"])
    state = dane_state(recorded, mta, now)
    report["dane_rollover"] = state
    report["mta_sts"] = mta_sts_state(recorded, config, mta.hostname)
    if state and state["late"]:
        since = utc_text(datetime.fromisoformat(state["waiting_since"]))
        report["problems"].append(f"DANE rollover of {state['owner']} has waited on DNS since {since}: "
                                  "an authoritative server does not serve the new record")
        raise_status(report, "warning")
