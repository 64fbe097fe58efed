"""The MTA's TLS policy map for partners, generated from verdicts (pure).

Postfix ``smtp_tls_policy_maps``: one ``domain level [match=…]`` line per enforced
partner, sorted, under a header saying certmgr owns the file.  A partner is
enforced only when every address of every MX meets its level (or ``force``);
otherwise its old line is kept as it was (none if it had none), so a refusal
never changes what the MTA does today.  A partner removed from the config is
removed from the map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from certmgr.partners.model import PartnerSpec

HEADER = "# TLS policy for partner domains, written by certmgr: edit [[partner]] in its config instead.\n"


def postfix_line(spec: PartnerSpec) -> str:
    """``bank.example verify match=mx.bank.example`` (Postfix TLS_README policy syntax)."""
    fields = [spec.domain, spec.require]
    if spec.require == "verify":
        fields.append("match=" + (":".join(spec.match) if spec.match else "hostname"))
    elif spec.require == "secure":
        fields.append("match=" + (":".join(spec.match) if spec.match else "nexthop:dot-nexthop"))
    return " ".join(fields)


def parse_map(text: str) -> dict[str, str]:
    """domain → its whole line, from a map certmgr wrote (comments and blanks ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out[stripped.split()[0].lower()] = stripped
    return out


@dataclass(frozen=True)
class MapPlan:
    text: str
    #: domains whose new policy is written
    enforced: tuple[str, ...]
    #: one sentence per partner left as it was, with each failing MX and why
    refused: tuple[str, ...]

    def changed(self, old: str) -> bool:
        return self.text != old


def plan_map(specs: Sequence[PartnerSpec], verdicts: Mapping[str, tuple[bool, Sequence[str]]],
             old_text: str) -> MapPlan:
    """The new map: ``verdicts`` is domain → (every MX meets the level, the problems)."""
    old = parse_map(old_text)
    lines: dict[str, str] = {}
    enforced: list[str] = []
    refused: list[str] = []
    for spec in specs:
        meets, problems = verdicts.get(spec.domain, (False, ["it was not checked"]))
        if meets or spec.force:
            lines[spec.domain] = postfix_line(spec)
            enforced.append(spec.domain)
            continue
        kept = old.get(spec.domain)
        if kept is not None:
            lines[spec.domain] = kept
        now = f"keeping '{kept}'" if kept else "leaving it out of the map"
        refused.append(f"not enforcing '{spec.require}' for {spec.domain} ({now}): " + "; ".join(problems)
                       + " — wait for the partner to fix it, lower require, or set force = true")
    if old_text and lines == {d: line for d, line in old.items() if d in lines} and set(lines) == set(old):
        text = old_text  # nothing changes: keep the file byte for byte
    else:
        text = HEADER + "".join(f"{lines[d]}\n" for d in sorted(lines))
    return MapPlan(text, tuple(enforced), tuple(refused))
