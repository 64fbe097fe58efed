"""The pure partner verdicts: each level's rules, DANE only when validated, the
warnings, MTA-STS, and the policy map that enforces only what meets its level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certmgr.config.model import PartnerSpec
from certmgr.partners.assess import accepted_names, judge, meets_level, name_matches
from certmgr.partners.model import AddressFacts, DaneFacts, MxLookup, PartnerFacts, StsPolicy
from certmgr.partners.mtasts import mx_allowed, parse_policy
from certmgr.partners.policymap import plan
from certmgr.probe.client import ProbeResult
from certmgr.probe.dane import Tlsa, record_for
from certmgr.probe.facts import ServedCert
from providers.deployers.tlspolicy import POSTFIX_HEADER, postfix_line, render_postfix_map
from tests.peers.testca import TestCA

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
HOST = "mx1.bank.example"


def cert(sans: tuple[str, ...] = (HOST,), *, days: int = 60, chain_valid: bool = True,
         self_signed: bool = False) -> ServedCert:
    return ServedCert(serial="1", subject_cn=sans[0] if sans else None, names=sans, key_alg="rsa", key_bits=2048,
                      not_before=NOW - timedelta(days=10), not_after=NOW + timedelta(days=days), sha256="00",
                      issuer_cn="ca", self_signed=self_signed, chain_valid=chain_valid and not self_signed,
                      chain_error=None if chain_valid and not self_signed else "untrusted")


def probed(c: ServedCert | None = None, *, starttls: bool = True, version: str = "TLSv1.3",
           error: str | None = None, unreachable: bool = False, leaf: bytes | None = None) -> ProbeResult:
    return ProbeResult("192.0.2.1:25", "smtp", False, None, starttls=starttls,
                       tls_version=version if starttls and not error else None, certificate=c, error=error,
                       unreachable=unreachable, leaf_der=leaf)


def partner(*addresses: AddressFacts, require: str = "verify", match: tuple[str, ...] = (),
            sts: StsPolicy | None = None) -> PartnerFacts:
    hosts = tuple(dict.fromkeys((a.preference, a.host) for a in addresses))
    return PartnerFacts(PartnerSpec("bank.example", require, match), MxLookup(hosts=hosts), addresses,
                        sts or StsPolicy())


def at(p: ProbeResult | None, host: str = HOST, dane: DaneFacts | None = None) -> AddressFacts:
    return AddressFacts(host, 10, "192.0.2.1" if p else None, p, dane, None if p else "no A record")


@pytest.mark.parametrize(("require", "facts", "status", "start"), [
    ("encrypt", at(probed(cert(self_signed=True))), "ok", None),
    ("encrypt", at(probed(starttls=False)), "critical", f"{HOST} (192.0.2.1) does not offer STARTTLS: mail to "
                                                        "bank.example will be deferred under 'encrypt'"),
    ("encrypt", at(probed(cert(), version="TLSv1.1")), "warning", f"{HOST} (192.0.2.1) negotiates only TLSv1.1, "
                                                                  "deprecated since RFC 8996: mail to bank.example is "
                                                                  "encrypted, but weakly"),
    ("verify", at(probed(cert(), version="TLSv1")), "critical", f"{HOST} (192.0.2.1) negotiates only TLSv1, whose "
                                                                "certificate signatures OpenSSL 3 refuses"),
    ("encrypt", at(probed(error="TLS handshake with x failed: no shared cipher")), "critical",
     f"{HOST} (192.0.2.1): the TLS handshake fails"),
    ("verify", at(probed(cert())), "ok", None),
    ("verify", at(probed(cert(days=5))), "warning", f"{HOST} (192.0.2.1) presents a certificate that expires in 5 "
                                                    "days"),
    ("verify", at(probed(cert(days=-1))), "critical", f"{HOST} (192.0.2.1) presents a certificate that expired on"),
    ("verify", at(probed(cert(chain_valid=False))), "critical", f"{HOST} (192.0.2.1) presents a certificate that "
                                                                "does not chain to a trusted root"),
    ("verify", at(probed(cert(("other.example",)))), "critical", f"{HOST} (192.0.2.1) presents a certificate for "
                                                                 "other.example, which matches none of"),
    ("verify", at(probed(unreachable=True, starttls=False, error="cannot connect: refused")), "unknown",
     f"{HOST} (192.0.2.1) cannot be reached on port 25"),
    ("verify", at(None), "critical", f"{HOST} has no address (no A record)"),
    ("secure", at(probed(cert(("*.bank.example",)))), "ok", None),
    ("secure", at(probed(cert(("mx.bank.example.evil",)))), "critical", f"{HOST} (192.0.2.1) presents a "
                                                                        "certificate for mx.bank.example.evil"),
    ("dane", at(probed(cert(self_signed=True))), "ok", None),  # no TLSA: opportunistic, never deferred
    ("dane-only", at(probed(cert()), dane=DaneFacts()), "critical", f"{HOST} (192.0.2.1) has no usable DANE TLSA "
                                                                    "record at _25._tcp.mx1.bank.example (it "
                                                                    "publishes no TLSA record)"),
    ("dane-only", at(probed(cert()), dane=DaneFacts((Tlsa(3, 1, 1, "00" * 32),), validated=False)), "critical",
     f"{HOST} (192.0.2.1) has no usable DANE TLSA record at _25._tcp.mx1.bank.example (its TLSA records are not "
     "DNSSEC-validated)"),
])
def test_levels(require: str, facts: AddressFacts, status: str, start: str | None) -> None:
    got, problems, verdicts = judge(partner(facts, require=require), NOW)
    assert got == status, problems
    if start is None:
        assert problems == [] and verdicts == [True]
    else:
        assert len(problems) == 1 and problems[0].startswith(start), problems


def test_dane_uses_validated_records_only() -> None:
    ca = TestCA("dane")
    bundle = ca.leaf(HOST)
    leaf = x509.load_pem_x509_certificate(bundle.cert_pem)
    der = leaf.public_bytes(serialization.Encoding.DER)
    good, bad = record_for(leaf), Tlsa(3, 1, 1, "11" * 32)
    p = probed(cert(), leaf=der)
    ok = partner(at(p, dane=DaneFacts((good,), validated=True)), require="dane-only")
    assert judge(ok, NOW)[0] == "ok"
    wrong = partner(at(p, dane=DaneFacts((bad,), validated=True)), require="dane")
    status, problems, _ = judge(wrong, NOW)
    assert status == "critical" and "matches none of its TLSA records" in problems[0]
    # the same wrong record, not validated, is ignored under 'dane' (as a sender ignores it)
    assert judge(partner(at(p, dane=DaneFacts((bad,), validated=False)), require="dane"), NOW)[0] == "ok"


def test_one_unreachable_address_among_good_ones_is_a_warning() -> None:
    good = at(probed(cert()))
    down = AddressFacts(HOST, 10, "192.0.2.2", probed(unreachable=True, starttls=False, error="timed out"))
    facts = partner(good, down)
    assert judge(facts, NOW)[0] == "warning"
    assert meets_level(facts, NOW) is False  # enforcement needs every address known good


def test_null_mx_and_names() -> None:
    facts = PartnerFacts(PartnerSpec("bank.example"), MxLookup(null_mx=True))
    assert judge(facts, NOW)[:2] == ("critical", ["bank.example publishes a null MX: this domain accepts no mail"])
    assert accepted_names("verify", HOST, "bank.example", ()) == (HOST,)
    assert accepted_names("secure", HOST, "bank.example", ()) == ("bank.example", ".bank.example")
    assert accepted_names("verify", HOST, "bank.example", ("MX.Bank.Example.", ".Bank.example")) == (
        "mx.bank.example", ".bank.example")
    assert name_matches(("*.bank.example",), (".bank.example",))
    assert not name_matches(("bank.example.evil",), (".bank.example",))


def test_mta_sts_policy() -> None:
    fields, problems = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: *.bank.example\r\nmx: mx.other\r\n"
                                    "max_age: 86400\r\n")
    assert problems == [] and fields["mx"] == ["*.bank.example", "mx.other"]
    assert parse_policy("version: STSv2\nmode: hard\nmax_age: x\n")[1] == [
        "its version is not STSv1", "its mode 'hard' is not one of enforce, testing, none", "its max_age is not a "
        "number of seconds"]
    assert mx_allowed(("*.bank.example",), "MX1.bank.example.") and not mx_allowed(("*.bank.example",),
                                                                                   "a.b.bank.example")
    sts = StsPolicy(id="1", mode="enforce", mx=("mx9.bank.example",))
    status, problems, _ = judge(partner(at(probed(cert())), sts=sts), NOW)
    assert status == "warning"
    assert problems == [f"{HOST} is not an mx of the MTA-STS policy of bank.example (mode enforce): senders that "
                        "enforce MTA-STS will not deliver to it"]


def test_policy_lines() -> None:
    assert postfix_line(("bank.example", "verify", ())) == "bank.example verify match=hostname"
    assert postfix_line(("bank.example", "verify", ("mx.bank.example", ".bank.example"))) == (
        "bank.example verify match=mx.bank.example:.bank.example")
    assert postfix_line(("bank.example", "secure", ())) == "bank.example secure match=nexthop:dot-nexthop"
    assert postfix_line(("bank.example", "encrypt", ())) == "bank.example encrypt"
    assert postfix_line(("bank.example", "dane-only", ())) == "bank.example dane-only"
    with pytest.raises(ValueError, match="require must be one of"):
        PartnerSpec("bank.example", "must")


def test_plan_enforces_only_what_meets_the_level() -> None:
    a, b = PartnerSpec("a.example", deploy=("edge",)), PartnerSpec("b.example", "encrypt", deploy=("edge", "out2"))
    c, d = PartnerSpec("c.example", deploy=("edge",)), PartnerSpec("d.example", force=True, deploy=("edge",))
    verdicts = {"a.example": (True, []), "b.example": (True, []), "d.example": (False, ["y"]),
                "c.example": (False, ["mx2.c.example (192.0.2.7) does not offer STARTTLS: mail to c.example will "
                                      "be deferred under 'verify'"])}
    edge, out2 = plan([a, b, c, d], verdicts, ["edge", "out2"])
    assert edge.entries == (("a.example", "verify", ()), ("b.example", "encrypt", ()), ("d.example", "verify", ()))
    assert edge.keep == ("c.example",)
    assert edge.refused == ("not enforcing 'verify' for c.example (its current policy stays): mx2.c.example "
                            "(192.0.2.7) does not offer STARTTLS: mail to c.example will be deferred under 'verify' "
                            "— wait for the partner to fix it, lower `require`, or set `force = true`",)
    assert (out2.entries, out2.keep, out2.refused) == ((("b.example", "encrypt", ()),), (), ())


def test_rendered_map_keeps_refused_lines_and_old_bytes() -> None:
    first = render_postfix_map([("a.example", "verify", ()), ("b.example", "encrypt", ())], [], "")
    assert first == POSTFIX_HEADER + "a.example verify match=hostname\nb.example encrypt\n"
    old = first.replace("\n", "\n\n", 1)  # the same policy, a byte different from what we would write
    assert render_postfix_map([("a.example", "verify", ()), ("b.example", "encrypt", ())], ["c.example"], old) == old
    # b breaks under a stricter level: its old line stays; a is removed from the config; c forced
    again = render_postfix_map([("c.example", "verify", ())], ["b.example"], old)
    assert again == POSTFIX_HEADER + "b.example encrypt\nc.example verify match=hostname\n"


def test_report_rows_and_exit_code() -> None:
    from certmgr.partners.report import exit_code, reports, rows

    good = partner(at(probed(cert())))
    bad = PartnerFacts(PartnerSpec("null.example"), MxLookup(null_mx=True))
    objects = reports([good, bad], NOW)
    assert exit_code(objects) == 2 and exit_code(objects[:1]) == 0 and exit_code([]) == 0
    assert rows(objects) == [
        ("bank.example", "verify", "OK", f"{HOST} (10)", "192.0.2.1", "yes", "TLSv1.3", "60", "yes", "-"),
        ("null.example", "verify", "CRITICAL", "-", "-", "-", "-", "-", "-",
         "null.example publishes a null MX: this domain accepts no mail"),
    ]
