"""Find providers through entry points and build them from the config.

Built-in providers register exactly as third-party ones do.  Two providers
with one name in one group is an error, not a silent override.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from certmgr.config.model import Config, ProviderConfig
from certmgr.dns.publisher import DnsPublisher
from certmgr.errors import ConfigError, raise_all
from certmgr.interfaces import (
    ChallengeSolver,
    ChecksSetup,
    Closeable,
    Deployer,
    Issuer,
    MtaInstance,
    Notifier,
    Options,
    ProviderEnv,
    ServesDocuments,
    SeveralHostnames,
)

GROUPS = {
    "issuer": "certmgr.issuers",
    "challenge": "certmgr.challenges",
    "deploy": "certmgr.deployers",
    "notify": "certmgr.notifiers",
    "dns": "certmgr.dns",
}
#: the protocol every provider of a kind satisfies (checked when it is built)
PROTOCOLS: dict[str, type[Any]] = {
    "issuer": Issuer,
    "challenge": ChallengeSolver,
    "deploy": Deployer,
    "notify": Notifier,
    "dns": DnsPublisher,
}


@dataclass(frozen=True)
class ProviderInfo:
    kind: str
    name: str
    target: str  # module:attr
    description: str


def _entry_points(kind: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUPS[kind]):
        if ep.name in found and found[ep.name].value != ep.value:
            raise ConfigError(
                f"two {kind} providers are registered as {ep.name!r}: {found[ep.name].value} and {ep.value}; "
                "uninstall one of them"
            )
        found[ep.name] = ep
    return found


def load_class(kind: str, name: str, *, table: str | None = None, key: str = "type") -> Any:
    eps = _entry_points(kind)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown {kind} type {name!r} (installed: {known})", table=table, key=key)
    return eps[name].load()


def list_providers() -> list[ProviderInfo]:
    out = []
    for kind in GROUPS:
        for name, ep in sorted(_entry_points(kind).items()):
            try:
                desc = str(getattr(ep.load(), "description", ""))
            except Exception as e:  # a broken third-party plugin must not hide the others
                desc = f"(cannot be loaded: {e})"
            out.append(ProviderInfo(kind, name, ep.value, desc))
    return out


def check_protocol(obj: object, kind: str, name: str, table: str | None) -> None:
    """Refuse a provider that is not what its kind promises (a ConfigError naming what it lacks)."""
    proto = PROTOCOLS[kind]
    if isinstance(obj, proto):
        return
    missing = [m for m in _members(proto) if not hasattr(obj, m)]
    raise ConfigError(f"the {kind} provider {name!r} ({type(obj).__module__}.{type(obj).__qualname__}) is not "
                      f"a {proto.__name__}: it lacks {', '.join(missing) or 'a member of the protocol'}",
                      table=table, key="type")


def _members(proto: type[Any]) -> list[str]:
    return sorted(getattr(proto, "__protocol_attrs__", None) or
                  {n for n in vars(proto) if not n.startswith("_")})


class Providers:
    """Builds each configured provider once, validating its table."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = ProviderEnv(
            config_dir=config.path.parent,
            state_dir=config.settings.state_dir,
            trust_file=config.settings.trust,
            make_challenge=self._make_challenge,
        )
        self._cache: dict[tuple[str, str], Any] = {}
        # renewals run in threads: one instance per provider (one HTTP-01 listener, one account)
        self._lock = threading.RLock()

    def _make_challenge(self, options: Options) -> ChallengeSolver:
        name = options.peek("provider") or options.peek("type")
        if not isinstance(name, str):
            raise ConfigError("is required: http-01 or dns-01", table=options.where, key="type")
        cls = load_class("challenge", name, table=options.where, key="provider" if options.has("provider") else "type")
        solver = cls.from_config(name, options, self.env)
        check_protocol(solver, "challenge", name, options.where)
        return cast(ChallengeSolver, solver)  # checked just above

    def _build(self, p: ProviderConfig) -> object:
        """The provider of table ``p``, built once and checked against its kind's protocol."""
        key = (p.kind, p.name)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._build_locked(p)
            return self._cache[key]

    def _build_locked(self, p: ProviderConfig) -> object:
        try:
            cls = load_class(p.kind, p.type, table=p.table)
            opts = Options(p.options, where=p.table, base_dir=self.config.path.parent)
            obj: object = cls.from_config(p.name, opts, self.env)
            check_protocol(obj, p.kind, p.type, p.table)
            return obj
        except ConfigError as e:
            raise self.config.locate(e if e.table else e.located(table=p.table)) from e

    # the casts hold: _build checked each object against PROTOCOLS[kind] when it built it

    def issuer(self, name: str) -> Issuer:
        return cast(Issuer, self._build(self.config.issuers[name]))

    def deployer(self, name: str) -> Deployer:
        return cast(Deployer, self._build(self.config.deploys[name]))

    def notifier(self, name: str) -> Notifier:
        return cast(Notifier, self._build(self.config.notifies[name]))

    def dns(self, name: str) -> DnsPublisher:
        """The publisher of ``[dns.NAME]``."""
        return cast(DnsPublisher, self._build(self.config.dns[name]))

    def build_all(self) -> None:
        """Build every configured provider (what `certmgr validate` checks); the errors of
        all of them are raised together."""
        errors: list[ConfigError] = []
        for p in (*self.config.issuers.values(), *self.config.deploys.values(), *self.config.notifies.values(),
                  *self.config.dns.values()):
            try:
                self._build(p)
            except ConfigError as e:
                errors.append(e)
        raise_all(errors, list(self.config.texts))
        self.check_shared_targets()
        self.check_one_table_per_instance()
        from certmgr.dns.zones import zone_errors

        raise_all([self.config.locate(e) for e in zone_errors(self.config, lambda name: self.dns(name).zone)],
                  list(self.config.texts))
        for domain, sts in self.config.mta_sts.items():
            self.web_target(sts.web, f'mta_sts."{domain}"')

    def setup_errors(self) -> list[ConfigError]:
        """What on this machine keeps a built deploy target from working (``ChecksSetup``),
        each located at the option that names it; `certmgr validate` reports them."""
        errors = []
        for p in self.config.deploys.values():
            deployer = self._build(p)
            if isinstance(deployer, ChecksSetup):
                errors += [self.config.locate(ConfigError(why, table=p.table, key=key))
                           for key, why in deployer.setup_problems()]
        return errors

    def web_target(self, name: str, table: str) -> Deployer:
        """``[deploy.NAME]`` as the ``web`` target of ``table``: a deployer that serves documents."""
        deployer = self.deployer(name)
        if not isinstance(deployer, ServesDocuments):
            raise self.config.locate(ConfigError(
                f"[deploy.{name}] cannot serve the MTA-STS policy file: its type "
                f"{self.config.deploys[name].type!r} installs no documents; use type \"webroot\"",
                table=table, key="web"))
        return deployer

    def check_one_table_per_instance(self) -> None:
        """Two deploy tables reloading one MTA instance would each rewrite its TLS settings
        and undo the other's files: several hostnames of one instance share one table."""
        seen: dict[str, str] = {}
        for name, p in self.config.deploys.items():
            deployer = self.deployer(name)
            found = deployer.instance() if isinstance(deployer, MtaInstance) else None
            if found is None:
                continue
            instance, key = found
            if instance in seen:
                raise self.config.locate(ConfigError(
                    f"deploys to the same MTA instance as [deploy.{seen[instance]}] ({instance}): the two would "
                    "undo each other's certificate files; use one [deploy] table and list it in every [[mta]] "
                    "that instance serves (it then serves them by SNI)", table=p.table, key=key))
            seen[instance] = name

    def check_shared_targets(self) -> None:
        """A deploy target listed by several [[mta]] tables (one MTA instance serving several
        hostnames) must be able to choose a certificate by SNI: its deployer says so."""
        for name, p in self.config.deploys.items():
            mtas = self.config.target_mtas(name)
            if len(mtas) < 2:
                continue
            deployer = self.deployer(name)
            why = (deployer.several_hostnames() if isinstance(deployer, SeveralHostnames)
                   else f"the {p.type} deployer does not say it can choose a certificate by SNI")
            if why:
                raise self.config.locate(ConfigError(
                    f"is listed by several [[mta]] tables ({', '.join(m.hostname for m in mtas)}), so one "
                    f"{p.type} instance would serve all of them, but {why}; give each [[mta]] a deploy "
                    "table of its own", table=p.table, key="type"))

    def __enter__(self) -> Providers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for obj in self._cache.values():
            if isinstance(obj, Closeable):
                obj.close()
