"""Every registered provider, built from a minimal valid config through the registry, is the
protocol of its kind; the optional capabilities are what the built-ins claim.

``providers/conformance.py`` says the same to mypy (typed assignments); this checks it at
run time for every entry point, so a provider registered but not listed there fails here.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from certmgr.config.load import load_config
from certmgr.dns.publisher import DnsPublisher
from certmgr.errors import ConfigError
from certmgr.interfaces import (
    AutoRenewing,
    ChallengeSolver,
    Deployer,
    HasDestinations,
    Issuer,
    MtaInstance,
    Notifier,
    Options,
    RenewalInfoSource,
    Revoker,
    ServesDocuments,
    SeveralHostnames,
    renews_automatically,
)
from certmgr.registry import GROUPS, PROTOCOLS, Providers, check_protocol
from providers import conformance

#: one minimal valid table per registered provider: (kind, type) -> TOML lines
MINIMAL: dict[tuple[str, str], str] = {
    ("issuer", "acme"): 'directory = "https://acme.example.net/directory"\n'
                        'challenge = { type = "http-01", mode = "standalone", port = 8080 }',
    ("issuer", "manual"): "",
    ("challenge", "http-01"): 'type = "http-01"\nmode = "standalone"\nport = 8080',
    ("challenge", "rfc2136"): 'type = "dns-01"\nprovider = "rfc2136"\nserver = "127.0.0.1:53"\n'
                              'tsig_key_file = "tsig.key"',
    ("challenge", "exec"): 'type = "dns-01"\nprovider = "exec"\ncommand = ["/bin/true"]',
    ("deploy", "postfix"): 'config_dir = "/etc/postfix"',
    ("deploy", "exim"): 'cert_dir = "/etc/exim4/certmgr"',
    ("deploy", "dovecot"): 'cert_dir = "/etc/dovecot/certmgr"',
    ("deploy", "exec"): 'command = ["/bin/true"]\ncert_dir = "/etc/certmgr/out"',
    ("deploy", "exchange"): 'command = ["/bin/true"]\ncert_dir = "/var/lib/certmgr/exchange"\n'
                            'pfx_password_env = "PFX_PW"',
    ("deploy", "webroot"): 'webroot = "/srv/mta-sts"\ncert_file = "/etc/nginx/mta-sts.crt"\n'
                           'key_file = "/etc/nginx/mta-sts.key"\nreload = ["nginx", "-s", "reload"]',
    ("notify", "email"): 'smtp = "127.0.0.1:25"\nfrom = "certmgr@example.com"\nto = ["ops@example.com"]',
    ("notify", "webhook"): 'url = "https://hooks.example.com/certmgr"',
    ("dns", "rfc2136"): 'server = "127.0.0.1:53"\nzone = "example.com"\ntsig_key_file = "tsig.key"',
}
LISTED = {"issuer": conformance.ISSUERS, "challenge": conformance.CHALLENGES,
          "deploy": conformance.DEPLOYERS, "notify": conformance.NOTIFIERS,
          "dns": conformance.DNS_PUBLISHERS}


def registered(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def build(kind: str, name: str, tmp_path: Path) -> object:
    """The provider as the core builds it: from a config file, through the registry."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tsig.key").write_text('key "acme" { algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0"; };\n')
    if kind == "challenge":
        providers = Providers(load_config(write_config(tmp_path, "")))
        options = tomllib.loads(MINIMAL[(kind, name)])
        assert providers.env.make_challenge is not None
        return providers.env.make_challenge(Options(options, where="issuer.x.challenge", base_dir=tmp_path))
    tables = {"issuer": "", "deploy": "", "notify": "", "dns": ""}
    tables[kind] = f'\n[{kind}.t]\ntype = "{name}"\n{MINIMAL[(kind, name)]}\n'
    providers = Providers(load_config(write_config(tmp_path, "".join(tables.values()))))
    if kind == "issuer":
        return providers.issuer("t")
    if kind == "deploy":
        return providers.deployer("t")
    if kind == "dns":
        return providers.dns("t")
    return providers.notifier("t")


def write_config(tmp_path: Path, tables: str) -> Path:
    issuer = "" if "[issuer.t]" in tables else '\n[issuer.t]\ntype = "manual"\n'
    path = tmp_path / "certmgr.toml"
    path.write_text(f'[certmgr]\nstate_dir = "{tmp_path / "state"}"\n{issuer}{tables}\n'
                    '[[mta]]\nhostname = "mx1.example.com"\nissuer = "t"\n')
    return path


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_every_entry_point_has_a_minimal_config_and_a_typed_listing(kind: str) -> None:
    eps = registered(kind)
    assert set(eps) == {name for k, name in MINIMAL if k == kind}
    assert {ep.load() for ep in eps.values()} == set(LISTED[kind])


@pytest.mark.parametrize(("kind", "name"), sorted(MINIMAL))
def test_each_registered_provider_satisfies_its_protocol(kind: str, name: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_PW", "pw")
    built = build(kind, name, tmp_path)
    assert isinstance(built, PROTOCOLS[kind])
    assert isinstance(built, {"issuer": Issuer, "challenge": ChallengeSolver, "deploy": Deployer,
                              "notify": Notifier, "dns": DnsPublisher}[kind])


def test_optional_capabilities(tmp_path: Path) -> None:
    acme, manual = build("issuer", "acme", tmp_path / "a"), build("issuer", "manual", tmp_path / "m")
    assert isinstance(acme, Issuer) and isinstance(manual, Issuer)
    assert isinstance(acme, Revoker) and isinstance(acme, RenewalInfoSource) and isinstance(acme, AutoRenewing)
    assert not isinstance(manual, Revoker) and not isinstance(manual, RenewalInfoSource)
    assert renews_automatically(acme) and not renews_automatically(manual)
    for name in ("email", "webhook"):
        assert isinstance(build("notify", name, tmp_path / name), HasDestinations)


@pytest.mark.parametrize("name", sorted(n for k, n in MINIMAL if k == "deploy"))
def test_deployers_say_whether_they_serve_several_hostnames(name: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_PW", "pw")
    built = build("deploy", name, tmp_path)
    cls = type(built)
    assert isinstance(built, SeveralHostnames) and isinstance(built, MtaInstance)
    assert isinstance(built, ServesDocuments) == (cls in conformance.SERVES_DOCUMENTS)


def test_an_object_that_is_not_its_protocol_is_refused_naming_what_it_lacks() -> None:
    class HalfDeployer:
        def install(self, request: object) -> None: ...

    with pytest.raises(ConfigError) as e:
        check_protocol(HalfDeployer(), "deploy", "half", "deploy.x")
    assert "is not a Deployer: it lacks rollback" in str(e.value)
    assert e.value.table == "deploy.x" and e.value.key == "type"


def test_the_dns_group_is_built_and_checked_by_the_registry() -> None:
    """The certmgr.dns group (TLSA and MTA-STS publishing) is a registry kind like the others:
    its entry points are covered by the parametrized tests above, checked against DnsPublisher."""
    assert GROUPS["dns"] == "certmgr.dns"
    assert PROTOCOLS["dns"] is DnsPublisher
