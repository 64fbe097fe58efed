"""The outbound TLS policy for partner domains, in each MTA's own format.

An entry is ``(domain, level, match)``: the Postfix TLS level the partner
requires (encrypt | verify | secure | dane | dane-only) and the certificate names
accepted under verify/secure (empty: Postfix's default for the level).  ``keep``
names partners whose current entry must stay exactly as it is (certmgr refused
to change their policy); every other domain not among the entries is dropped.
When nothing changes the old text is returned as it was, byte for byte.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

Entry = tuple[str, str, tuple[str, ...]]

POSTFIX_HEADER = ("# TLS policy for partner domains (smtp_tls_policy_maps), written by certmgr:\n"
                  "# change the [[partner]] tables of its config instead of this file.\n")


def postfix_line(entry: Entry) -> str:
    """``bank.example verify match=mx.bank.example`` (Postfix TLS_README, "TLS policy table")."""
    domain, level, match = entry
    fields = [domain, level]
    if level == "verify":
        fields.append("match=" + (":".join(match) if match else "hostname"))
    elif level == "secure":
        fields.append("match=" + (":".join(match) if match else "nexthop:dot-nexthop"))
    return " ".join(fields)


def parse_postfix_map(text: str) -> dict[str, str]:
    """domain → its whole line (comments and blank lines ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out[stripped.split()[0].lower()] = stripped
    return out


def render_postfix_map(entries: Sequence[Entry], keep: Collection[str], old_text: str) -> str:
    old = parse_postfix_map(old_text)
    lines = {domain: old[domain] for domain in keep if domain in old}
    lines.update({e[0]: postfix_line(e) for e in entries})
    if lines == old:
        return old_text
    return POSTFIX_HEADER + "".join(f"{lines[d]}\n" for d in sorted(lines))


EXIM_HEADER = ("# TLS policy for partner domains (lsearch: domain: level), written by certmgr:\n"
               "# change the [[partner]] tables of its config instead of this file.\n")
#: what Exim's smtp transport can enforce from a per-domain level (it checks the MX host name only)
EXIM_LEVELS = ("encrypt", "verify", "dane", "dane-only")


def exim_problem(entry: Entry) -> str | None:
    """Why Exim cannot enforce ``entry`` (None when it can)."""
    domain, level, match = entry
    if level not in EXIM_LEVELS:
        return (f"{domain}: Exim's smtp transport cannot enforce '{level}' (it verifies the MX host name, not the "
                "domain); use require = \"verify\" for partners deployed to Exim")
    if match:
        return (f"{domain}: Exim verifies the certificate against the MX host name only, so `match` "
                f"({', '.join(match)}) cannot be honoured; remove it for partners deployed to Exim")
    return None


def parse_exim_map(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out[stripped.split(":", 1)[0].strip().lower()] = stripped
    return out


def render_exim_map(entries: Sequence[Entry], keep: Collection[str], old_text: str) -> str:
    old = parse_exim_map(old_text)
    lines = {domain: old[domain] for domain in keep if domain in old}
    lines.update({e[0]: f"{e[0]}: {e[1]}" for e in entries})
    if lines == old:
        return old_text
    return EXIM_HEADER + "".join(f"{lines[d]}\n" for d in sorted(lines))
