"""A private nginx serving one HTTPS site on ``<127.x.y.z>:443`` from a webroot (the
MTA-STS policy host: senders fetch ``https://mta-sts.<domain>/.well-known/mta-sts.txt``
on port 443 only).  Debian's ``nginx`` package; run in the foreground with its own
prefix, config, pid and logs; ``reload()`` is ``nginx -s reload`` on that config.

``vhosts`` adds more names on the same address and certificate, each served from
``root_of(name)`` with a media type of its own (a policy host that gets it wrong)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from tests.peers.named import LoopbackServer, add_loopback_address
from tests.peers.util import random_loopback_address, require_binary, wait_port


class NginxSite(LoopbackServer):
    def __init__(self, workdir: Path, server_name: str, *, vhosts: Mapping[str, str] | None = None) -> None:
        """``vhosts``: more server name → media type of every file under ``root_of(name)``."""
        self.workdir = workdir
        self.server_name = server_name
        self.vhosts = dict(vhosts or {})
        self.webroot = workdir / "www"
        self.cert_file = workdir / "site.crt"  # full chain
        self.key_file = workdir / "site.key"
        self.address = random_loopback_address(443)
        self.proc: subprocess.Popen[bytes] | None = None
        self._added_address = False

    def root_of(self, name: str) -> Path:
        """Where the files of ``name`` (the main server name or a vhost) go."""
        return self.webroot if name == self.server_name else self.workdir / "vhosts" / name

    @property
    def conf(self) -> Path:
        return self.workdir / "nginx.conf"

    def start(self, cert_pem: bytes, key_pem: bytes) -> None:
        d = self.workdir
        (d / "logs").mkdir(parents=True, exist_ok=True)
        for name in (self.server_name, *self.vhosts):
            self.root_of(name).mkdir(parents=True, exist_ok=True)
        vhosts = "".join(f"""    server {{
        listen {self.address}:443 ssl;
        server_name {name};
        ssl_certificate {self.cert_file};
        ssl_certificate_key {self.key_file};
        root {self.root_of(name)};
        types {{ }}
        default_type {media};
    }}
""" for name, media in self.vhosts.items())
        self.cert_file.write_bytes(cert_pem)
        self.key_file.write_bytes(key_pem)
        self.key_file.chmod(0o600)
        self.conf.write_text(f"""daemon off;
master_process on;
user root;  # the workers read the site from pytest's 0700 tmp dirs
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    types {{ text/plain txt; }}
    server {{
        listen {self.address}:443 ssl;
        server_name {self.server_name};
        ssl_certificate {self.cert_file};
        ssl_certificate_key {self.key_file};
        root {self.webroot};
    }}
{vhosts}}}
""")
        self._added_address = add_loopback_address(self.address)
        log = open(d / "logs" / "stderr.log", "ab")
        self.proc = subprocess.Popen([require_binary("nginx"), "-p", str(d), "-c", str(self.conf)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=d)
        log.close()
        try:
            wait_port(443, host=self.address, timeout=15)
        except BaseException:
            self.stop()
            raise

    def reload(self) -> None:
        """What a deploy hook runs: re-read certificate and key (new workers pick them up)."""
        subprocess.run([require_binary("nginx"), "-p", str(self.workdir), "-c", str(self.conf), "-s", "reload"],
                       check=True, capture_output=True)
        time.sleep(0.3)
