"""Webhook notifier: POSTs each message as JSON to a URL (chat bridges, incident tools).

Needs: ``url`` (https; plain http only to a loopback address, where nothing
travels over a network).  Optional: ``ca_bundle`` (PEM file to verify the
server instead of the system trust), ``timeout`` (seconds, default 10),
``headers`` (a table of extra HTTP headers), and a bearer token from
``token_file`` / ``token_env`` (never inline), sent as ``Authorization: Bearer``.

Body: ``{"subject", "text", "severity", "hostname", "facts"}``.  Any answer
other than 2xx is a NotifyError, so the core keeps the message queued.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import requests

from certmgr.errors import ConfigError, NotifyError
from certmgr.interfaces import Message, Options, ProviderEnv


@dataclass(frozen=True)
class WebhookConfig:
    name: str
    url: str
    ca_bundle: Path | None
    timeout: float
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = None


class WebhookNotifier:
    description = "JSON POST to a URL (https, or http on loopback), optional bearer token"

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, name: str, options: Options, env: ProviderEnv) -> Self:
        url = options.str("url")
        _check_url(url, options)
        ca_bundle = options.path("ca_bundle", None, must_exist=True)
        timeout = options.float("timeout", 10.0, min=0.5)
        headers = _headers(options.raw("headers", {}), options)
        token = options.secret("token", required=False)
        if token and any(k.lower() == "authorization" for k in headers):
            raise ConfigError("set either an Authorization header or token_file/token_env, not both",
                              table=options.where, key="headers")
        options.finish()
        return cls(WebhookConfig(name, url, ca_bundle, timeout, headers, token))

    @property
    def destinations(self) -> frozenset[str]:
        return frozenset({self.config.url})

    def send(self, message: Message) -> None:
        c = self.config
        body = {
            "subject": message.subject,
            "text": message.text,
            "severity": message.severity,
            "hostname": message.hostname,
            "facts": dict(message.facts),
        }
        headers = {"Content-Type": "application/json", "User-Agent": "certmgr", **c.headers}
        if c.token:
            headers["Authorization"] = f"Bearer {c.token}"
        where = f"[notify.{c.name}] webhook {_redacted(c.url)}"
        try:
            resp = requests.post(
                c.url,
                data=json.dumps(body, default=_json_default).encode(),
                headers=headers,
                timeout=c.timeout,
                verify=str(c.ca_bundle) if c.ca_bundle else True,
                allow_redirects=False,  # a redirect would resend the token elsewhere
            )
        except requests.exceptions.SSLError as e:
            raise NotifyError(f"{where}: TLS verification failed ({e}); check ca_bundle") from e
        except requests.RequestException as e:
            raise NotifyError(f"{where}: cannot deliver ({e.__class__.__name__}: {e}); check that the "
                              "URL is right and the service is up") from e
        if not 200 <= resp.status_code < 300:
            snippet = resp.text[:200].strip()
            raise NotifyError(f"{where} answered HTTP {resp.status_code} {resp.reason}: {snippet!r}")


def _headers(raw: Any, options: Options) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a table of header = \"value\", got {raw!r}",
                          table=options.where, key="headers")
    headers: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key.replace("-", "").isalnum():
            raise ConfigError(f"bad header name {key!r}", table=options.where, key="headers")
        if not isinstance(value, str) or any(ch in value for ch in "\r\n"):
            raise ConfigError(f"header {key}: value must be a one-line string",
                              table=options.where, key="headers")
        headers[key] = value
    return headers


def _check_url(url: str, options: Options) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http(s) URL", table=options.where, key="url")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{url!r}: plain http is only allowed to a loopback address (the token and the "
            "message would cross the network in clear text); use https",
            table=options.where, key="url",
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redacted(url: str) -> str:
    """Scheme, host and path only: query strings often carry tokens (chat webhooks)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{f':{p.port}' if p.port else ''}{p.path}"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | tuple | frozenset):
        return list(value)
    return str(value)
