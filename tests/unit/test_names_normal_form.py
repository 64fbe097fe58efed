"""A name the config writes in normal form is taken in one match (10,000 MTAs are read at every
command); that shortcut must say exactly what the full check of every label says, for names
in normal form and for every near miss (the same name back, or the same refusal)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from certmgr.pki.names import NameError_, _normalize, normalize_hostname

NAMES = [
    "mx1.example.com", "a.b", "mail-1.example.org", "a--b.example.com", "x" * 63 + ".example.com",
    "x" * 64 + ".example.com", ".".join(["a" * 49] * 5), ".".join(["a" * 50] * 5) + ".com",
    "MX1.Example.com", "mx1.example.com.", "mx1.example.com..", " mx1.example.com", "mx1.example.com\n",
    "localhost", "1.2.3.4", "mx1.example.123", "mx1.123", "123.example.com", "-mx.example.com",
    "mx-.example.com", "mx1..example.com", "mx_1.example.com", "*.example.com", "mx*.example.com",
    "xn--bcher-kva.example.com", "xn--zz.example.com", "mxxn--a.example.com", "bücher.example.com",
    "[::1]", "fe80::1", "mx1.example.com:25", "", "a.b-", "a.-b", "a.b.c-d", "a.1-",
]


def outcome(f: Callable[[str, bool], str], name: str, wildcard: bool) -> str:
    try:
        return "ok " + f(name, wildcard)
    except NameError_ as e:
        return f"refused {e}"


@pytest.mark.parametrize("wildcard", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_the_shortcut_says_what_the_full_check_says(name: str, wildcard: bool) -> None:
    assert outcome(lambda n, w: normalize_hostname(n, allow_wildcard=w), name, wildcard) == \
        outcome(_normalize, name, wildcard)
