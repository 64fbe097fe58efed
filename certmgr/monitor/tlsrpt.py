"""SMTP TLS reports (RFC 8460): strict parsing, from bytes, a gzip body or a mail.

A report is refused — ``TlsReportError`` with the reason and the JSON path of
what is wrong — when it is not JSON, when a gzip body would expand beyond
``MAX_REPORT_BYTES`` (checked while decompressing, so a bomb costs at most that
much memory), or when a required field is missing or of the wrong type.
Unknown ``result-type`` values are kept under their name (the IANA registry
grows); unknown members are ignored, as §4 asks of receivers.
"""

from __future__ import annotations

import email
import email.policy
import json
import zlib
from collections.abc import Iterator
from datetime import datetime
from email.message import Message
from typing import Any

from certmgr.errors import CertmgrError
from certmgr.store.monitor_types import Failure, PolicyResult, TlsReport

MAX_REPORT_BYTES = 10 * 1024 * 1024  # a large provider's daily report is well under 1 MiB

POLICY_TYPES = ("tlsa", "sts", "no-policy-found")
RESULT_TYPES = (  # RFC 8460 §4.3
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
    "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
    "sts-policy-invalid", "sts-webpki-invalid",
)
MEDIA_TYPES = ("application/tlsrpt+gzip", "application/tlsrpt+json")


class TlsReportError(CertmgrError):
    """A report that is refused; ``str()`` says why and where."""

    exit_code = 2


def gunzip_capped(data: bytes, limit: int = MAX_REPORT_BYTES) -> bytes:
    """Decompress a gzip body, refusing one that expands beyond ``limit`` bytes."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        chunk = d.decompress(data, limit + 1)
        out += chunk
        while d.unconsumed_tail and len(out) <= limit:
            out += d.decompress(d.unconsumed_tail, limit + 1 - len(out))
    except zlib.error as e:
        raise TlsReportError(f"TLS report: not a valid gzip body ({e})") from e
    if len(out) > limit:
        raise TlsReportError(f"TLS report: gzip body expands beyond {limit} bytes; refused")
    if not d.eof:
        raise TlsReportError("TLS report: gzip body is truncated")
    return bytes(out)


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, *, required: bool = True) -> Any:
    if key not in obj:
        if required:
            raise TlsReportError(f"TLS report: {where}: missing {key!r}")
        return None
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TlsReportError(f"TLS report: {where}.{key}: expected {names}, got {type(value).__name__}")
    if isinstance(value, int) and value < 0:
        raise TlsReportError(f"TLS report: {where}.{key}: negative count {value}")
    return value


def _datetime(value: str, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise TlsReportError(f"TLS report: {where}: not an RFC 3339 date-time: {value!r}") from e
    if when.tzinfo is None:
        raise TlsReportError(f"TLS report: {where}: date-time without a time zone: {value!r}")
    return when


def parse_report(data: bytes) -> TlsReport:
    """A report from its JSON bytes."""
    if len(data) > MAX_REPORT_BYTES:
        raise TlsReportError(f"TLS report: {len(data)} bytes of JSON, more than {MAX_REPORT_BYTES}; refused")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise TlsReportError(f"TLS report: not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise TlsReportError(f"TLS report: top level is {type(doc).__name__}, not an object")
    rng = _get(doc, "date-range", dict, "report")
    policies = []
    for i, item in enumerate(_get(doc, "policies", list, "report")):
        where = f"policies[{i}]"
        if not isinstance(item, dict):
            raise TlsReportError(f"TLS report: {where}: expected object, got {type(item).__name__}")
        pol = _get(item, "policy", dict, where)
        ptype = _get(pol, "policy-type", str, f"{where}.policy")
        if ptype not in POLICY_TYPES:
            raise TlsReportError(f"TLS report: {where}.policy.policy-type: {ptype!r} is not one of "
                                 f"{', '.join(POLICY_TYPES)}")
        # the RFC's example says "mx-host", its field list "mx-host-pattern": senders use both
        mx = (_get(pol, "mx-host", list, f"{where}.policy", required=False)
              or _get(pol, "mx-host-pattern", list, f"{where}.policy", required=False) or [])
        summary = _get(item, "summary", dict, where)
        failures = []
        for j, f in enumerate(_get(item, "failure-details", list, where, required=False) or []):
            fw = f"{where}.failure-details[{j}]"
            if not isinstance(f, dict):
                raise TlsReportError(f"TLS report: {fw}: expected object, got {type(f).__name__}")
            failures.append(Failure(
                result_type=_get(f, "result-type", str, fw),
                sessions=_get(f, "failed-session-count", int, fw),
                sending_mta_ip=_get(f, "sending-mta-ip", str, fw, required=False) or "",
                receiving_mx_hostname=_get(f, "receiving-mx-hostname", str, fw, required=False) or "",
                receiving_ip=_get(f, "receiving-ip", str, fw, required=False) or "",
            ))
        policies.append(PolicyResult(
            policy_type=ptype,
            policy_domain=_get(pol, "policy-domain", str, f"{where}.policy").lower().rstrip("."),
            mx_hosts=tuple(str(h) for h in mx),
            successful=_get(summary, "total-successful-session-count", int, f"{where}.summary"),
            failed=_get(summary, "total-failure-session-count", int, f"{where}.summary"),
            failures=tuple(failures),
        ))
    report_id = _get(doc, "report-id", str, "report")
    if not report_id.strip():
        raise TlsReportError("TLS report: report.report-id is empty")
    return TlsReport(
        report_id=report_id,
        organization=_get(doc, "organization-name", str, "report"),
        contact=_get(doc, "contact-info", str, "report"),
        start=_datetime(_get(rng, "start-datetime", str, "report.date-range"), "report.date-range.start-datetime"),
        end=_datetime(_get(rng, "end-datetime", str, "report.date-range"), "report.date-range.end-datetime"),
        policies=tuple(policies),
    )


def parse_body(data: bytes, media_type: str) -> TlsReport:
    """A report from an HTTPS POST body or a mail attachment of ``media_type``."""
    media_type = media_type.split(";")[0].strip().lower()
    if media_type == "application/tlsrpt+gzip":
        return parse_report(gunzip_capped(data))
    if media_type == "application/tlsrpt+json":
        return parse_report(data)
    raise TlsReportError(f"TLS report: media type {media_type!r} is not one of {', '.join(MEDIA_TYPES)}")


def reports_in_mail(raw: bytes) -> Iterator[TlsReport]:
    """Every TLS report attached to a mail; a mail without one raises ``TlsReportError``."""
    msg: Message = email.message_from_bytes(raw, policy=email.policy.compat32)
    found = False
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in MEDIA_TYPES:
            found = True
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                raise TlsReportError(f"TLS report: the {ctype} part has no body")
            yield parse_body(payload, ctype)
    if not found:
        raise TlsReportError(f"TLS report: the mail has no {' or '.join(MEDIA_TYPES)} part")
