"""Exim main log → ``Session``s, the same facts as from Postfix.

Exim logs one line per message received and per delivery, not per connection,
so for Exim a session is a message: ``<=`` lines with ``H=`` (received over
SMTP; local submissions have no ``H=``) inbound, ``=>`` lines with ``H=``
(the first recipient of a delivery; ``->`` lines are more recipients of the
same one) outbound.  Exim 4.96 with the default ``log_selector``:

    2026-11-30 04:09:53 1xXsi9-00037C-2J <= s@a.test H=(client.example) [127.0.0.1] P=esmtps
        X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=488 id=...
    2026-11-30 04:09:54 1xXsi9-00037C-2J => u@verified.test R=verified T=smtp H=127.0.0.1 [127.0.0.1]
        X=TLS1.3:...:256 CV=yes DN="CN=mx.b.test" C="250 ..."

Trust levels in Postfix's words: outbound ``CV=yes`` or ``CV=dane`` (the
certificate verified; with Exim's default ``tls_verify_cert_hostnames`` also
its name) is Verified, otherwise Untrusted; inbound a verified client
certificate is Trusted, one not verified (``DN=`` without ``CV=yes``) Untrusted,
none Anonymous.  The domain: outbound the recipient's, inbound the domain of
the client's verified reverse name, else of its HELO name, else its address.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from certmgr.monitor.postfix_log import PLAINTEXT, Session, client_domain

_LINE = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)?(?: (?P<tz>[+-]\d{4}))?(?: \[\d+\])? "
    r"(?P<rest>.*)$"
)
_MSG = re.compile(
    r"[0-9A-Za-z]+-[0-9A-Za-z]+-[0-9A-Za-z]+ (?P<flag><=|=>|->|\*>|==|\*\*) (?P<addr>\S*) (?P<fields>.*)$"
)
_HOST = re.compile(r"\bH=(?P<name>[^\s(\[]+)?\s?(?:\((?P<helo>[^)]*)\)\s?)?\[(?P<ip>[^\]]+)\]")
_TLS = re.compile(r"\bX=(?P<proto>[^:\s]+):(?P<cipher>[^:\s]+)(?::\d+)?")
_CV = re.compile(r"\bCV=(?P<cv>\w+)")


def _protocol(exim: str) -> str:
    """Exim's ``TLS1.3`` as Postfix writes it: ``TLSv1.3``."""
    return "TLSv" + exim[3:] if exim.startswith("TLS1") else exim


class EximLogParser:
    """Same interface as ``PostfixLogParser``: ``feed``, ``unparsed``, ``state``/``restore``."""

    def __init__(self, year: int) -> None:
        self.year = year  # unused: Exim writes the year; kept for the collector's interface
        self.unparsed = 0

    def state(self) -> dict[str, Any]:
        return {}  # every Exim line stands alone: no open sessions to carry

    def restore(self, state: dict[str, Any]) -> None:
        pass

    def feed(self, line: str) -> Session | None:
        m = _LINE.match(line.rstrip("\n"))
        if m is None:
            if line.strip():
                self.unparsed += 1
            return None
        msg = _MSG.match(m["rest"])
        if msg is None or msg["flag"] not in ("<=", "=>"):
            return None
        fields = msg["fields"]
        host = _HOST.search(fields)
        if host is None:
            return None  # not over SMTP: local submission, local delivery
        when = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        if m["tz"]:
            sign = 1 if m["tz"][0] == "+" else -1
            when -= sign * timedelta(hours=int(m["tz"][1:3]), minutes=int(m["tz"][3:5]))
        tls = _TLS.search(fields)
        cv_m = _CV.search(fields)
        cv = cv_m["cv"] if cv_m else ""
        inbound = msg["flag"] == "<="
        if tls is None:
            level = PLAINTEXT
        elif inbound:
            level = "Trusted" if cv == "yes" else "Untrusted" if " DN=" in fields else "Anonymous"
        else:
            level = "Verified" if cv in ("yes", "dane") else "Untrusted"
        name = host["name"] or ""
        if inbound:
            domain = client_domain(name or (host["helo"] or "") or host["ip"])
        else:
            domain = msg["addr"].rpartition("@")[2].lower().rstrip(".")
        return Session(
            when=when, direction="inbound" if inbound else "outbound", host=name or host["helo"] or "",
            address=host["ip"], domain=domain, tls=tls is not None, level=level,
            protocol=_protocol(tls["proto"]) if tls else "", cipher=tls["cipher"] if tls else "",
        )
