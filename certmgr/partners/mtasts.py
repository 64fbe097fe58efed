"""MTA-STS (RFC 8461): the ``_mta-sts`` TXT id, the policy at
``https://mta-sts.<domain>/.well-known/mta-sts.txt``, and which MX hosts it allows.

The policy host is resolved with the same resolver as the MX records and its
certificate is verified against the system roots plus ``trust`` with the host
name, as a sending MTA would; redirects are not followed (RFC 8461 3.3).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from pathlib import Path

from certmgr.partners.discover import Resolver, lookup_addresses, lookup_txt, tags
from certmgr.partners.model import StsPolicy
from certmgr.pki.names import comparable_name, covers

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 3.3: senders may limit the size
MODES = ("enforce", "testing", "none")


def parse_policy(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """Fields of a policy file (``mx`` may repeat) and what is wrong with it."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    problems: list[str] = []
    if fields.get("version") != ["STSv1"]:
        problems.append("its version is not STSv1")
    mode = fields.get("mode", [""])[0]
    if mode not in MODES:
        problems.append(f"its mode {mode!r} is not one of {', '.join(MODES)}")
    if mode in ("enforce", "testing") and not fields.get("mx"):
        problems.append("it lists no mx")
    if not fields.get("max_age", [""])[0].isdigit():
        problems.append("its max_age is not a number of seconds")
    return fields, problems


def mx_allowed(patterns: tuple[str, ...], host: str) -> bool:
    """Does an ``mx`` pattern of the policy match ``host`` (``*.`` is one leftmost label)?"""
    return covers(patterns, comparable_name(host))


def fetch_policy(domain: str, resolver: Resolver, trust_file: Path | None, timeout: float = 10.0) -> str:
    """The policy text; OSError/ValueError with the reason when it cannot be fetched."""
    host = f"mta-sts.{domain}"
    addresses, error = lookup_addresses(host, resolver, timeout)
    if not addresses:
        raise OSError(error or f"{host} has no address")
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if trust_file is not None:
        ctx.load_verify_locations(cafile=str(trust_file))
    last: Exception | None = None
    for address in addresses:
        try:
            raw = socket.create_connection((address, 443), timeout=timeout)
        except OSError as e:
            last = e
            continue
        try:
            tls = ctx.wrap_socket(raw, server_hostname=host)
        except OSError:
            raw.close()
            raise
        conn = http.client.HTTPSConnection(host, 443, timeout=timeout, context=ctx)
        try:
            conn.sock = tls
            conn.request("GET", POLICY_PATH, headers={"User-Agent": "certmgr"})
            resp = conn.getresponse()
            body = resp.read(MAX_POLICY_BYTES + 1)
        finally:
            conn.close()
        if resp.status != 200:
            raise ValueError(f"https://{host}{POLICY_PATH} answers HTTP {resp.status}")
        media = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if media != "text/plain":
            raise ValueError(f"https://{host}{POLICY_PATH} is served as {media or 'no media type'}, not text/plain "
                             "(RFC 8461 3.2)")
        if len(body) > MAX_POLICY_BYTES:
            raise ValueError(f"https://{host}{POLICY_PATH} is larger than {MAX_POLICY_BYTES} bytes")
        return body.decode("utf-8", "replace")
    raise OSError(f"cannot connect to {host} port 443: {last}")


def lookup_policy(domain: str, resolver: Resolver, trust_file: Path | None, timeout: float = 10.0) -> StsPolicy:
    """The domain's MTA-STS state, with one sentence per problem."""
    records, dns_error = lookup_txt(f"_mta-sts.{domain}", "v=STSv1", resolver, timeout)
    if dns_error:
        return StsPolicy(problems=(f"the MTA-STS record of {domain} cannot be read: {dns_error}",))
    if not records:
        return StsPolicy()
    if len(records) > 1:
        return StsPolicy(problems=(f"{domain} publishes {len(records)} _mta-sts records; senders ignore "
                                   "them all (RFC 8461 3.1)",))
    policy_id = tags(records[0]).get("id")
    try:
        text = fetch_policy(domain, resolver, trust_file, timeout)
    except (OSError, ValueError, http.client.HTTPException) as e:
        reason = e.reason if isinstance(e, ssl.SSLError) and e.reason else str(e)
        return StsPolicy(id=policy_id, problems=(
            f"the MTA-STS policy of {domain} cannot be fetched from https://mta-sts.{domain}{POLICY_PATH}: "
            f"{reason}",))
    fields, problems = parse_policy(text)
    max_age = fields.get("max_age", [""])[0]
    return StsPolicy(
        id=policy_id,
        mode=fields.get("mode", [None])[0],
        mx=tuple(fields.get("mx", [])),
        max_age=int(max_age) if max_age.isdigit() else None,
        problems=tuple(f"the MTA-STS policy of {domain} is invalid: {p}" for p in problems),
    )
