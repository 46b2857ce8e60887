"""Certificates made at test time: a CA, servers and clients it signs, bad files.

``TestPKI(tmpdir)`` writes PEM files and returns their paths; every server
certificate names ``localhost`` and ``127.0.0.1`` so clients can verify it.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key, password: bytes | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _pem_cert(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Pair:
    key: str
    cert: str


class TestPKI:
    __test__ = False  # not a test class, despite the name

    def __init__(self, directory: Path, cn: str = "cocalcproxy test CA") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca = str(self.dir / f"ca-{id(self)}.pem")
        Path(self.ca).write_bytes(_pem_cert(self.ca_cert))
        self._n = 0

    def _issue(self, cn: str, sans: list, client: bool = False):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(self.ca_key, hashes.SHA256())

    def _write(self, stem: str, key, certs: list, password: bytes | None = None) -> Pair:
        self._n += 1
        kp = self.dir / f"{stem}-{self._n}.key"
        cp = self.dir / f"{stem}-{self._n}.crt"
        kp.write_bytes(_pem_key(key, password))
        cp.write_bytes(b"".join(_pem_cert(c) for c in certs))
        return Pair(str(kp), str(cp))

    def server(self, names: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1", "::1"),
               chain: bool = True) -> Pair:
        """A server key and certificate; the certificate file holds the chain (CA last)."""
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        key, cert = self._issue(names[0] if names else "server", sans)
        return self._write("server", key, [cert, self.ca_cert] if chain else [cert])

    def intermediate_server(self) -> Pair:
        """A server certificate signed by an intermediate CA; the file holds the
        leaf and the intermediate (a client trusting only the root verifies it
        only if the server sends the chain)."""
        return self._intermediate("chained", "localhost", [x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])

    def intermediate_client(self, cn: str = "hub") -> Pair:
        """A client certificate signed by an intermediate CA, the file holding
        leaf and intermediate (a server trusting only the root verifies it only
        if the client sends the chain)."""
        return self._intermediate("client-chained", cn, [], ExtendedKeyUsageOID.CLIENT_AUTH)

    def _intermediate(self, stem: str, cn: str, sans: list, usage=None) -> Pair:
        now = datetime.datetime.now(datetime.timezone.utc)
        ikey = ec.generate_private_key(ec.SECP256R1())
        inter = (
            x509.CertificateBuilder().subject_name(_name("intermediate")).issuer_name(self.ca_cert.subject)
            .public_key(ikey.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(inter.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return self._write(stem, key, [builder.sign(ikey, hashes.SHA256()), inter])

    def client(self, cn: str = "hub") -> Pair:
        key, cert = self._issue(cn, [], client=True)
        return self._write("client", key, [cert])

    def encrypted(self) -> Pair:
        key, cert = self._issue("localhost", [x509.DNSName("localhost")])
        return self._write("encrypted", key, [cert], password=b"secret")

    def mismatched(self) -> Pair:
        a = self.server()
        b = self.server()
        return Pair(a.key, b.cert)
