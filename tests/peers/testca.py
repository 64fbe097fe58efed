"""A local certificate authority for tests: a root, an intermediate, and leaves.

Leaves come in every shape the probe must recognise: good, expired, not yet
valid, self-signed, a weak RSA-1024 key, a certificate for another name, ECDSA.
Each leaf is returned as a :class:`certmgr.interfaces.CertBundle`, ready for a
deployer, with the intermediate as its chain.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certmgr.interfaces import CertBundle

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def make_key(key_type: str) -> PrivateKey:
    """``rsa-2048``, ``rsa-1024`` (weak, for negative tests), ``ecdsa-p256``, ``ecdsa-p384``."""
    alg, _, size = key_type.partition("-")
    if alg == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(size))
    curve = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}[size]
    return ec.generate_private_key(curve)


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TestCA:
    """Root -> intermediate -> leaf.  ``root_pem`` is what a client trusts."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "certmgr test") -> None:
        now = datetime.now(UTC)
        self.root_key = make_key("ecdsa-p256")
        self.root = self._ca_cert(_name(f"{name} root"), self.root_key, _name(f"{name} root"),
                                  self.root_key, now)
        self.inter_key = make_key("ecdsa-p256")
        self.inter = self._ca_cert(_name(f"{name} intermediate"), self.inter_key, self.root.subject,
                                   self.root_key, now, path_len=0)

    @staticmethod
    def _ca_cert(subject: x509.Name, key: PrivateKey, issuer: x509.Name, signer: PrivateKey,
                 now: datetime, path_len: int | None = None) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            # long before any leaf it signs, so expired leaves still chain (as in real life)
            .not_valid_before(now - timedelta(days=3650))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(signer, hashes.SHA256())
        )

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        return self.inter.public_bytes(serialization.Encoding.PEM)

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self.root_pem)
        return path

    def leaf(
        self,
        hostname: str,
        names: tuple[str, ...] = (),
        *,
        key_type: str = "rsa-2048",
        days: int = 90,
        not_before: datetime | None = None,
        self_signed: bool = False,
    ) -> CertBundle:
        """A leaf for ``hostname`` (CN and first SAN) plus ``names``.

        ``days`` counts from ``not_before`` (default: an hour ago); a negative
        end gives an expired certificate, a future ``not_before`` one not yet valid.
        """
        key = make_key(key_type)
        start = not_before or datetime.now(UTC) - timedelta(hours=1)
        end = start + timedelta(days=days)
        if end <= start:  # expired: keep the validity period well-formed
            start = end - timedelta(days=90)
        issuer, signer = (_name(hostname), key) if self_signed else (self.inter.subject, self.inter_key)
        sans = [x509.DNSName(n) for n in dict.fromkeys((hostname, *names))]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(hostname))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()),
                critical=False,
            )
        cert = builder.sign(signer, hashes.SHA256())
        der = cert.public_bytes(serialization.Encoding.DER)
        return CertBundle(
            hostname=hostname,
            names=tuple(dict.fromkeys((hostname, *names))),
            key_type=key_type,
            key_alg="rsa" if key_type.startswith("rsa") else "ecdsa",
            key_pem=_pem_key(key),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            chain_pem=b"" if self_signed else self.chain_pem,
            sha256=hashlib.sha256(der).hexdigest(),
            serial=format(cert.serial_number, "x"),
            not_after=end,
        )

    def sign_csr(self, csr_pem: bytes, *, days: float = 90) -> bytes:
        """What a CA makes of a CSR (``certmgr csr``'s output): a server certificate for its
        subject and SANs, valid from an hour ago until ``days`` from now; leaf then intermediate, PEM."""
        csr = x509.load_pem_x509_csr(csr_pem)
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.inter.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()),
                           critical=False)
            .sign(self.inter_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM) + self.chain_pem


def import_all(config: Path, ca: TestCA, out_dir: Path) -> None:
    """Give every MTA of ``config`` a certificate the way a manual-CA user does: `csr`, ``ca``
    signs it, `import` (which verifies the chain up to ``[certmgr] trust``); in one process
    through the functions the two commands run, never by writing rows.  The signed files go
    to ``out_dir``."""
    from certmgr.config.load import load_config
    from certmgr.lifecycle.manual import export_csr, import_certificate
    from certmgr.runtime import Runtime

    out_dir.mkdir(parents=True, exist_ok=True)
    rt = Runtime(load_config(config))
    try:
        rt.sync_inventory()
        for mta in rt.config.mtas:
            [(_alg, csr)] = export_csr(rt, mta.hostname)
            pem = out_dir / f"{mta.hostname}.pem"
            pem.write_bytes(ca.sign_csr(csr))
            import_certificate(rt, mta.hostname, pem)
    finally:
        rt.close()


def manual_ca_config(root: Path, mtas: str, *, certmgr: str = "", tables: str = "") -> Path:
    """``root/certmgr.toml`` for an inventory under a manual CA: state in ``root/state``, the
    ``[issuer.corp]`` manual issuer and a ``[notify.ops]`` mailer that never connects, then
    ``mtas`` (``[[mta]]`` tables naming them).  ``certmgr``: more ``[certmgr]`` lines (trust,
    resolver); ``tables``: more tables before the issuer (a ``[daemon]``)."""
    path = root / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{root / 'state'}"
{certmgr}
{tables}
[issuer.corp]
type = "manual"

[notify.ops]
type = "email"
smtp = "127.0.0.1:9"
from = "certmgr@example.com"
to = ["ops@example.com"]
calendar = false
{mtas}""")
    return path


def imported_inventory(root: Path, count: int, ca: TestCA, *, mta: str = "", certmgr: str = "") -> Path:
    """``root/certmgr.toml`` (see :func:`manual_ca_config`) of ``count`` ECDSA MTAs
    ``mx0000.example.com`` ... notified by ``[notify.ops]``, each with a certificate imported
    through `csr` + `import` (:func:`import_all`); ``[certmgr] trust`` is ``ca``'s root.
    ``mta``: more lines for every ``[[mta]]``; ``certmgr``: more ``[certmgr]`` lines."""
    mtas = "".join(f'\n[[mta]]\nhostname = "mx{i:04d}.example.com"\nkey = "ecdsa-p256"\nissuer = "corp"\n'
                   f'notify = ["ops"]\n{mta}' for i in range(count))
    root.mkdir(parents=True, exist_ok=True)
    trust = ca.write_root(root / "root.pem")
    config = manual_ca_config(root, mtas, certmgr=f'trust = "{trust}"\n{certmgr}')
    import_all(config, ca, root / "issued")
    return config
