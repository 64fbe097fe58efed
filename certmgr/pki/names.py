"""DNS names as SMTP peers see them: fully qualified, IDNA, lower case, no trailing dot.

:func:`normalize_hostname` checks and normalises a name the config gives (every refusal says
what is wrong with it); :func:`comparable_name` is the form any name is compared in, and
:func:`covers` says whether a certificate's names cover a host.  Pure functions.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class NameError_(ValueError):
    """A name that cannot be used; the message says why."""


#: a name already in normal form: lower-case ASCII labels, at least two, the last not all digits
#: (no punycode: an ``xn--`` label is checked by decoding it)
_NORMAL = re.compile(r"(?:(?!-)[a-z0-9-]{1,63}(?<!-)\.)+(?=[a-z0-9-]*[a-z-])(?!-)[a-z0-9-]{1,63}(?<!-)")


def normalize_hostname(raw: str, *, allow_wildcard: bool = False) -> str:
    """Return ``raw`` as a lower-case IDNA A-label FQDN without trailing dot.

    Refuses IP addresses (SMTP peers verify names), single-label names,
    wildcards (unless ``allow_wildcard``), bad characters and overlong labels.
    """
    # most names are written in normal form already: one match instead of a check per label
    # (a config of 10,000 MTAs is read at every command)
    if isinstance(raw, str) and len(raw) <= 253 and "xn--" not in raw and _NORMAL.fullmatch(raw):
        return raw
    return _normalize(raw, allow_wildcard)


def _normalize(raw: str, allow_wildcard: bool) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise NameError_("is empty")
    name = raw.strip()
    if name != raw:
        raise NameError_(f"{raw!r} has leading or trailing white space")
    if name.endswith("."):
        name = name[:-1]
    if name.endswith("."):
        raise NameError_(f"{raw!r} ends with more than one dot")
    # an IP address is dotted digits or has a colon: only those are parsed (a config of
    # 10,000 hostnames is read in one go, and a failed parse costs as much as the rest)
    bare = name.strip("[]")
    if ":" in bare or bare.replace(".", "").isdigit():
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            pass
        else:
            raise NameError_(f"{raw!r} is an IP address; SMTP peers verify DNS names, use the MTA's FQDN")
    labels = name.split(".")
    wildcard = labels[0] == "*"
    if wildcard and not allow_wildcard:
        raise NameError_(f"{raw!r} is a wildcard; this field takes one exact name "
                         "(a wildcard is allowed only in an MTA's `names`)")
    if "*" in "".join(labels[1:] if wildcard else labels):
        raise NameError_(f"{raw!r} has a '*' that is not a whole leftmost label")
    out: list[str] = ["*"] if wildcard else []
    for label in labels[1:] if wildcard else labels:
        if not label:
            raise NameError_(f"{raw!r} has an empty label (two dots in a row)")
        try:
            if label.isascii():
                alabel = label.lower()
                if alabel.startswith("xn--"):
                    # round-trip so a malformed punycode label is caught here
                    alabel.encode("ascii").decode("idna")
            else:
                _refuse_invisible(raw, label)
                alabel = _to_alabel(label)
            if alabel.startswith("xn--"):
                _refuse_mixed_scripts(raw, label, _to_ulabel(alabel))
        except NameError_:
            raise
        except (UnicodeError, ValueError) as e:
            raise NameError_(f"{raw!r}: label {label!r} is not a valid internationalized name ({e})") from e
        if len(alabel) > 63:
            raise NameError_(f"{raw!r}: label {label!r} is longer than 63 characters")
        if not _LABEL.match(alabel):
            raise NameError_(
                f"{raw!r}: label {label!r} may hold only letters, digits and inner hyphens"
            )
        out.append(alabel)
    if len(out) < 2:
        raise NameError_(f"{raw!r} is not fully qualified (it needs a domain, e.g. mx1.example.com)")
    if out[-1].isdigit():
        raise NameError_(f"{raw!r} ends in a numeric label; that is not a DNS name")
    fqdn = ".".join(out)
    if len(fqdn) > 253:
        raise NameError_(f"{raw!r} is longer than 253 characters")
    return fqdn


#: scripts that mix with Latin in ordinary names (Japanese, Chinese, Korean)
_EAST_ASIAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO"})


def _refuse_invisible(raw: str, label: str) -> None:
    # IDNA mapping silently drops format characters (zero-width space, soft hyphen, BOM):
    # a name that looks like one thing in the config and is another must be refused
    for ch in label:
        if unicodedata.category(ch) == "Cf":
            raise NameError_(f"{raw!r}: label {label!r} holds the invisible character U+{ord(ch):04X}")


def _refuse_mixed_scripts(raw: str, label: str, ulabel: str) -> None:
    """Refuse homographs such as Latin mixed with Cyrillic or Greek in one label."""
    scripts = {unicodedata.name(ch, "?").split(" ")[0] for ch in ulabel if ch.isalpha()}
    if len(scripts) > 1 and not scripts <= {"LATIN"} | _EAST_ASIAN:
        raise NameError_(
            f"{raw!r}: label {label!r} mixes scripts ({', '.join(sorted(scripts))}); "
            "a look-alike name is refused, write the label in one script"
        )


def _to_ulabel(alabel: str) -> str:
    import idna

    try:
        return str(idna.decode(alabel))
    except idna.IDNAError as e:
        raise ValueError(str(e)) from e


def _to_alabel(label: str) -> str:
    import idna  # lazily: only non-ASCII names need it

    try:
        return str(idna.encode(label, uts46=True).decode("ascii"))
    except idna.IDNAError as e:
        raise ValueError(str(e)) from e


def comparable_name(name: str) -> str:
    """The form names are compared in: case-insensitive, trailing dot dropped, IDN in IDNA form.

    Never raises: it reads names as peers present them (certificate SANs, 220 banners).
    """
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def covers(names: tuple[str, ...], hostname: str) -> bool:
    """Does a certificate with these SANs cover ``hostname``?  ``*.`` matches one label."""
    host = comparable_name(hostname)
    for raw in names:
        name = comparable_name(raw)
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            if host.split(".", 1)[1] == name[2:]:
                return True
    return False


def hostname_key(given: str) -> str:
    """A hostname from the command line as the config stores it: an IDN written as in the
    config (U-labels) finds its MTA, like upper case and a trailing dot do."""
    try:
        return normalize_hostname(given)
    except NameError_:
        return comparable_name(given)
