"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) for one domain: pure policy, ``now`` passed in.

Three things must stay in step: the policy file served at
``https://mta-sts.<domain>/.well-known/mta-sts.txt``, the certificate that serves it, and
the ``id`` in the ``_mta-sts.<domain>`` TXT record.  A sender refetches the policy only
when the id changes, so the id is bumped **last**, once the new policy (and certificate)
is what the web server actually serves; a sender never fetches a new id with an old policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from certmgr.errors import ConfigError
from certmgr.pki.names import comparable_name

MODES = ("enforce", "testing", "none")
#: below a day senders refetch all the time; RFC 8461 caps max_age at 31557600 s
MIN_MAX_AGE, MAX_MAX_AGE = 86400, 31557600
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass(frozen=True)
class Policy:
    mode: str
    mx: tuple[str, ...]  # patterns, e.g. "mx1.example.com", "*.example.com"
    max_age: int

    def text(self) -> str:
        lines = ["version: STSv1", f"mode: {self.mode}", *(f"mx: {m}" for m in self.mx), f"max_age: {self.max_age}"]
        return "\r\n".join(lines) + "\r\n"


def parse_policy(text: str) -> Policy | None:
    """The policy a web server serves, or None when it is not a valid STSv1 policy."""
    fields: dict[str, list[str]] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            return None
        fields.setdefault(key.strip(), []).append(value.strip())
    try:
        if fields.get("version") != ["STSv1"] or fields["mode"][0] not in MODES:
            return None
        return Policy(fields["mode"][0], tuple(fields.get("mx", [])), int(fields["max_age"][0]))
    except (KeyError, IndexError, ValueError):
        return None


def check_settings(mode: str, max_age: int, *, table: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"must be one of {', '.join(MODES)}, got {mode!r}", table=table, key="mode")
    if not MIN_MAX_AGE <= max_age <= MAX_MAX_AGE:
        raise ConfigError(f"must be between {MIN_MAX_AGE} (a day) and {MAX_MAX_AGE} (a year) seconds, "
                          f"got {max_age}", table=table, key="max_age")


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 section 4.1: exact, or ``*.`` standing for exactly one leftmost label."""
    pattern, host = comparable_name(pattern), comparable_name(host)
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def policy_from_mx(mode: str, max_age: int, live_mx: Iterable[str], patterns: Sequence[str] = ()) -> Policy:
    """The policy for the live MX RRset (or the configured patterns), sorted and deduplicated."""
    mx = tuple(sorted({comparable_name(p) for p in patterns} or {comparable_name(h) for h in live_mx}))
    return Policy(mode, mx, max_age)


def problems(policy: Policy, live_mx: Iterable[str], mx_tls: Mapping[str, str | None]) -> list[str]:
    """Why senders would fail with this policy: an MX no pattern matches, an MX whose
    certificate does not verify for its name (``mx_tls[host]`` is the reason, None when fine)."""
    out = []
    for host in sorted(comparable_name(h) for h in live_mx):
        if not any(mx_matches(p, host) for p in policy.mx):
            out.append(f"MX {host} matches no mx: pattern of the policy")
        reason = mx_tls.get(host)
        if reason:
            out.append(f"MX {host}: {reason}")
    if not policy.mx:
        out.append("the policy lists no mx: pattern")
    return out


def parse_txt_id(values: Iterable[str]) -> str | None:
    """The id of the one ``v=STSv1`` TXT record, None when absent or ambiguous."""
    ids = []
    for v in values:
        parts = dict(p.strip().partition("=")[::2] for p in v.split(";") if p.strip())
        if parts.get("v") == "STSv1" and _ID.match(parts.get("id", "")):
            ids.append(parts["id"])
    return ids[0] if len(ids) == 1 else None


def txt_value(policy_id: str) -> str:
    return f"v=STSv1; id={policy_id}"


def tlsrpt_value(rua: Sequence[str]) -> str:
    return f"v=TLSRPTv1; rua={','.join(rua)}"


def new_id(now: datetime) -> str:
    """Ids are UTC timestamps: alphanumeric, at most 32 characters, increasing."""
    return now.strftime("%Y%m%d%H%M%S")


class Step(StrEnum):
    DEPLOY_WEB = "deploy-web"  # put policy (and certificate) on the web target
    WAIT_SERVED = "wait-served"  # the web server does not serve them yet
    PUBLISH_ID = "publish-id"  # bump the _mta-sts TXT id: last
    PUBLISH_TLSRPT = "publish-tlsrpt"
    REFUSED = "refused"  # enforce with a failing MX: keep what is published
    IDLE = "idle"


@dataclass(frozen=True)
class Served:
    """What the world sees now."""

    policy_text: str | None  # fetched over HTTPS with a verified certificate; None when it failed
    cert_sha256: str | None  # of the certificate the web server presented
    txt: tuple[str, ...]  # _mta-sts TXT values on every authoritative server (agreed)
    tlsrpt: tuple[str, ...]  # _smtp._tls TXT values


@dataclass(frozen=True)
class Wanted:
    policy: Policy
    cert_sha256: str  # the current mta-sts.<domain> certificate
    rua: tuple[str, ...] = ()


@dataclass(frozen=True)
class Published:
    """Recorded: what went onto the web target last, and what the published id stands for."""

    web_policy_text: str = ""
    web_cert_sha256: str = ""
    policy_text: str = ""  # behind ``policy_id``
    cert_sha256: str = ""
    policy_id: str = ""


@dataclass(frozen=True)
class Decision:
    step: Step
    record: Published  # record this before carrying the step out
    value: str = ""  # PUBLISH_*: the TXT value
    why: str = ""


def decide(recorded: Published, wanted: Wanted, served: Served, live_mx: Iterable[str],
           mx_tls: Mapping[str, str | None], now: datetime) -> Decision:
    """The next step: web target first, then the id, then TLS-RPT."""
    policy, text = wanted.policy, wanted.policy.text()
    trouble = problems(policy, live_mx, mx_tls)
    if policy.mode == "enforce" and trouble:
        return Decision(Step.REFUSED, recorded, why="; ".join(trouble) + "; not publishing an enforce policy")
    on_web = served.policy_text is not None and parse_policy(served.policy_text) == policy \
        and served.cert_sha256 == wanted.cert_sha256
    if not on_web:
        if (recorded.web_policy_text, recorded.web_cert_sha256) == (text, wanted.cert_sha256):
            return Decision(Step.WAIT_SERVED, recorded,
                            why="deployed, but the web server does not serve the new policy and certificate yet")
        return Decision(Step.DEPLOY_WEB, replace(recorded, web_policy_text=text, web_cert_sha256=wanted.cert_sha256),
                        why="the policy or the mta-sts certificate changed")
    current = parse_txt_id(served.txt)
    in_step = bool(recorded.policy_id) and current == recorded.policy_id \
        and (recorded.policy_text, recorded.cert_sha256) == (text, wanted.cert_sha256)
    if not in_step:
        pid = new_id(now)
        if current is not None and current.isdigit() and pid.isdigit() and int(pid) <= int(current):
            pid = str(int(current) + 1)
        rec = replace(recorded, policy_text=text, cert_sha256=wanted.cert_sha256, policy_id=pid)
        return Decision(Step.PUBLISH_ID, rec, value=txt_value(pid), why="the new policy is served: bump the id")
    if wanted.rua and tuple(served.tlsrpt) != (tlsrpt_value(wanted.rua),):
        return Decision(Step.PUBLISH_TLSRPT, recorded, value=tlsrpt_value(wanted.rua), why="TLS-RPT record")
    return Decision(Step.IDLE, recorded, why="policy, certificate and id in step")
