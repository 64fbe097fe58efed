"""Find providers through entry points and build them from the config.

Built-in providers register exactly as third-party ones do.  Two providers
with one name in one group is an error, not a silent override.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from certmgr.config.model import Config, ProviderConfig
from certmgr.errors import ConfigError
from certmgr.interfaces import ChallengeSolver, MtaInstance, Options, ProviderEnv, SeveralHostnames

GROUPS = {
    "issuer": "certmgr.issuers",
    "challenge": "certmgr.challenges",
    "deploy": "certmgr.deployers",
    "notify": "certmgr.notifiers",
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
        return cls.from_config(name, options, self.env)  # type: ignore[no-any-return]

    def _build(self, p: ProviderConfig) -> Any:
        key = (p.kind, p.name)
        with self._lock:
            return self._build_locked(key, p)

    def _build_locked(self, key: tuple[str, str], p: ProviderConfig) -> Any:
        if key not in self._cache:
            try:
                cls = load_class(p.kind, p.type, table=p.table)
                opts = Options(p.options, where=p.table, base_dir=self.config.path.parent)
                self._cache[key] = cls.from_config(p.name, opts, self.env)
            except ConfigError as e:
                raise self.config.locate(e if e.table else e.located(table=p.table)) from e
        return self._cache[key]

    def issuer(self, name: str) -> Any:
        return self._build(self.config.issuers[name])

    def deployer(self, name: str) -> Any:
        return self._build(self.config.deploys[name])

    def notifier(self, name: str) -> Any:
        return self._build(self.config.notifies[name])

    def build_all(self) -> None:
        """Build every configured provider (what `certmgr validate` checks)."""
        for name in self.config.issuers:
            self.issuer(name)
        for name in self.config.deploys:
            self.deployer(name)
        for name in self.config.notifies:
            self.notifier(name)
        self.check_shared_targets()
        self.check_one_table_per_instance()

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

    def close(self) -> None:
        for obj in self._cache.values():
            close = getattr(obj, "close", None)
            if callable(close):
                close()
