"""Postfix mail log → one ``Session`` per SMTP session, inbound and outbound.

What Postfix logs (3.7, ``smtpd_tls_loglevel = 1`` / ``smtp_tls_loglevel = 1``):

- inbound, ``smtpd[pid]``: ``connect from NAME[ADDR]``, then for STARTTLS
  ``LEVEL TLS connection established from NAME[ADDR]: PROTO with cipher C ...``,
  and ``disconnect from NAME[ADDR] ehlo=2 starttls=1 ... commands=N``.  The
  session ends with ``disconnect``; one that sent no command at all
  (``commands=0/0``: a port probe, a health check) is not a mail session.
- outbound, ``smtp[pid]``: ``LEVEL TLS connection established to NAME[ADDR]:PORT: ...``
  then one ``QID: to=<rcpt>, relay=NAME[ADDR]:PORT, ... status=...`` per
  recipient.  A TLS line belongs to the next delivery of that process to the
  same relay; recipients of one message over one connection are one session.
  Postfix does not cache TLS connections by default, so a later delivery of
  the same process without a new TLS line went in plaintext.  A delivery over
  a cached connection says ``conn_use=N`` (N > 1): same session, not a new one.

The domain of a session: outbound, the recipient's domain; inbound, the domain
of the client's reverse name (``client_domain``: Postfix does not log the HELO
name of accepted mail), or its address when the name is ``unknown``.

The parser is a state machine fed line by line; ``state()``/``restore()`` carry
the open sessions across a restart, so a session split by a checkpoint is
counted once, complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LEVELS = ("Anonymous", "Untrusted", "Trusted", "Verified")
PLAINTEXT = "none"  # the level of a session without TLS

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

# "Nov 30 03:58:49 host prog/svc[pid]: msg" (postlogd, classic syslog) or
# "2026-11-30T03:58:49.123456+00:00 host prog/svc[pid]: msg" (rsyslog's default on Debian 12)
_LINE = re.compile(
    r"(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" \S+ (?P<prog>[^\s\[]+)\[(?P<pid>\d+)\]: (?P<msg>.*)$"
)
_HEAD = re.compile(r"[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d |\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_TLS = re.compile(
    r"(?P<level>Anonymous|Untrusted|Trusted|Verified) TLS connection established (?P<dir>from|to) "
    r"(?P<host>[^\s\[]+)\[(?P<addr>[^\]]+)\](?::\d+)?: (?P<proto>\S+) with cipher (?P<cipher>\S+)"
)
_CONNECT = re.compile(r"connect from (?P<host>[^\s\[]+)\[(?P<addr>[^\]]+)\]")
_DISCONNECT = re.compile(r"disconnect from (?P<host>[^\s\[]+)\[(?P<addr>[^\]]+)\](?::\d+)?(?P<rest>.*)$")
_NO_COMMAND = re.compile(r"\bcommands=0/0\b")
_DELIVERY = re.compile(
    r"(?P<qid>[0-9A-Za-z]+): to=<(?P<rcpt>[^>]*)>,(?: orig_to=<[^>]*>,)? "
    r"relay=(?P<host>[^\s\[,]+)\[(?P<addr>[^\]]+)\](?::(?P<port>\d+))?,(?: conn_use=(?P<use>\d+),)?"
)


@dataclass(frozen=True)
class Session:
    when: datetime
    direction: str  # "inbound" | "outbound"
    host: str
    address: str
    domain: str
    tls: bool
    level: str  # one of LEVELS, or PLAINTEXT
    protocol: str  # "TLSv1.3", ... or "" without TLS
    cipher: str


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def client_domain(name: str) -> str:
    """The domain an inbound client counts under: the last two labels of its name
    (three under a two-letter country code with a short second level, as in
    ``co.uk``), so that a provider's thousand hosts are one domain and the
    aggregates stay small; an address stays an address."""
    name = name.lower().rstrip(".")
    if ":" in name or name.replace(".", "").isdigit():
        return name
    labels = name.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


class PostfixLogParser:
    """Feed lines in order; get back the sessions they complete.

    ``year``: the year of timestamps without one (classic syslog); the caller
    knows it from the file's time, the parser must not guess from the clock.
    ``unparsed`` counts lines that are not syslog lines at all (no syslog time
    stamp, or an SMTP line without the ``host prog[pid]:`` header); lines of other
    programs and Postfix lines about other things are simply not sessions.
    """

    def __init__(self, year: int) -> None:
        self.year = year
        self.unparsed = 0
        self._inbound: dict[str, dict[str, Any]] = {}  # pid → open smtpd session
        self._outbound: dict[str, dict[str, Any]] = {}  # pid → TLS state / last delivery of an smtp process
        self._times: dict[tuple[str, str, str, int], datetime] = {}

    # -- persistence across restarts -------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"inbound": self._inbound, "outbound": self._outbound, "year": self.year}

    def restore(self, state: dict[str, Any]) -> None:
        self._inbound = dict(state.get("inbound", {}))
        self._outbound = dict(state.get("outbound", {}))
        self.year = int(state.get("year", self.year))

    # -- parsing -------------------------------------------------------------------------
    def _when(self, m: re.Match[str]) -> datetime:
        iso = m["iso"]
        if iso:
            stamp = datetime.fromisoformat(iso.replace("Z", "+00:00"))
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        key = (m["mon"], m["day"], m["hms"], self.year)
        when = self._times.get(key)
        if when is None:  # many lines share a second: parse each second once
            if len(self._times) > 4096:
                self._times.clear()
            h, mi, s = m["hms"].split(":")
            when = datetime(self.year, _MONTHS[m["mon"]], int(m["day"]), int(h), int(mi), int(s), tzinfo=UTC)
            self._times[key] = when
        return when

    def feed(self, line: str) -> Session | None:
        if "/smtp" not in line:  # the cheap path for most lines: only "is it a syslog line?"
            if _HEAD.match(line) is None and line.strip():
                self.unparsed += 1
            return None
        m = _LINE.match(line)  # "$" also matches before the line's newline
        if m is None or (m["mon"] and m["mon"] not in _MONTHS):
            if line.strip():
                self.unparsed += 1
            return None
        prog = m["prog"]
        service = prog.rpartition("/")[2]
        if "postfix" not in prog or service not in ("smtpd", "smtp"):
            return None
        msg, pid = m["msg"], m["pid"]
        if service == "smtpd":
            return self._smtpd(m, pid, msg)
        return self._smtp(m, pid, msg)

    def _smtpd(self, m: re.Match[str], pid: str, msg: str) -> Session | None:
        if msg.startswith("connect from "):
            c = _CONNECT.match(msg)
            if c:
                self._inbound[pid] = {"host": c["host"], "addr": c["addr"]}
            return None
        if msg.startswith("disconnect from "):
            d = _DISCONNECT.match(msg)
            open_ = self._inbound.pop(pid, None)
            if d is None or _NO_COMMAND.search(d["rest"]):
                return None
            tls = (open_ or {}).get("tls")
            name = d["host"] if d["host"] != "unknown" else d["addr"]
            return Session(
                when=self._when(m), direction="inbound", host=d["host"], address=d["addr"],
                domain=client_domain(name), tls=tls is not None,
                level=tls["level"] if tls else PLAINTEXT, protocol=tls["proto"] if tls else "",
                cipher=tls["cipher"] if tls else "",
            )
        if "TLS connection established from" in msg:
            t = _TLS.match(msg)
            if t:
                s = self._inbound.setdefault(pid, {"host": t["host"], "addr": t["addr"]})
                s["tls"] = {"level": t["level"], "proto": t["proto"], "cipher": t["cipher"]}
        return None

    def _smtp(self, m: re.Match[str], pid: str, msg: str) -> Session | None:
        if "TLS connection established to" in msg:
            t = _TLS.match(msg)
            if t:
                self._outbound[pid] = {"tls": {"level": t["level"], "proto": t["proto"], "cipher": t["cipher"]},
                                       "addr": t["addr"], "qid": None}
            return None
        if ": to=<" not in msg:
            return None
        d = _DELIVERY.match(msg)
        if d is None or d["host"] == "none":
            return None
        if d["use"] and int(d["use"]) > 1:
            return None  # a cached connection: the session was counted at its first delivery
        st = self._outbound.get(pid)
        key = [d["qid"], d["addr"], d["port"] or ""]
        if st is not None and st.get("last") == key:
            return None  # another recipient of the same message over the same connection
        tls = None
        if st is not None and st.get("tls") and st["addr"] == d["addr"] and st["qid"] in (None, d["qid"]):
            tls = st["tls"]
            st["qid"] = d["qid"]
        else:
            st = {"tls": None, "addr": d["addr"], "qid": d["qid"]}
        st["last"] = key
        self._outbound[pid] = st
        return Session(
            when=self._when(m), direction="outbound", host=d["host"], address=d["addr"],
            domain=_domain_of(d["rcpt"]), tls=tls is not None, level=tls["level"] if tls else PLAINTEXT,
            protocol=tls["proto"] if tls else "", cipher=tls["cipher"] if tls else "",
        )
