"""Trust anchors: the system roots plus the config's extra trust file, read once per change."""

from __future__ import annotations

import functools
import os
import ssl
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from certmgr.errors import ConfigError


def _system_trust_file() -> Path | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get(paths.openssl_cafile_env), paths.cafile, paths.openssl_cafile,
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


@functools.lru_cache(maxsize=8)
def _load_anchors(path: Path, mtime_ns: int) -> tuple[x509.Certificate, ...]:
    # Cached by mtime: parsing the ~150 system roots costs more than a local probe.
    del mtime_ns
    return tuple(x509.load_pem_x509_certificates(path.read_bytes()))


# A few system roots (and test CAs such as pebble's) carry non-positive serials; they are still
# usable anchors, and a person running `check` cannot act on the library's warning.  A filter set
# once: ``warnings.catch_warnings`` is not thread-safe, and probes load anchors from many threads.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive",
                        category=CryptographyDeprecationWarning)


def load_trust_file(path: Path) -> tuple[x509.Certificate, ...]:
    """The certificates in a PEM trust file; a ConfigError naming the file when it cannot
    be read or holds no PEM certificate (never a traceback in the middle of a probe)."""
    try:
        return _load_anchors(path, path.stat().st_mtime_ns)
    except OSError as e:
        raise ConfigError(f"cannot read the trust file {path}: {e.strerror or e}", file=str(path)) from e
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"the trust file {path} is not a PEM file of certificates ({e}); give it the "
                          "CA certificates as -----BEGIN CERTIFICATE----- blocks", file=str(path)) from e


def trust_anchors(trust_file: Path | None) -> tuple[x509.Certificate, ...]:
    """The system roots plus the config's extra trust file."""
    anchors: list[x509.Certificate] = []
    for path in (_system_trust_file(), trust_file):
        if path is not None:
            anchors.extend(load_trust_file(path))
    return tuple(anchors)
