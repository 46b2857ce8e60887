"""TLS: PEM files → server options that SIGHUP can swap; client options for hub → host.

Server side (every role's ``--https-key``/``--https-cert``): the certificate
file may hold the chain (leaf first); TLS 1.2 or newer; ALPN offers
``http/1.1``.  Every problem — unreadable, not PEM, an encrypted key, a key
that does not match the certificate — is a ``TLSFileError`` whose message names
the file, so the command line turns it into a one-line startup error, and a
reload keeps the old files.  Keys and certificates are read with
``cryptography`` (an encrypted key fails at once; OpenSSL's loader would ask
for a passphrase on the terminal).

``ReloadableServerTLS`` is the connection creator the listeners use: new
connections get the options in force when they arrive, open ones keep theirs.
With ``client_ca`` it also requires a client certificate signed by that CA
(the host role's mutual TLS).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet.ssl import (Certificate, CertificateOptions, TLSVersion, optionsForClientTLS,
                                  platformTrust, trustRootFromCertificates)
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

ALPN = [b"http/1.1"]


class TLSFileError(Exception):
    """A key, certificate or CA file that cannot be used; the message names it."""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSFileError(f"{what} {path}: cannot read it: {e.strerror}") from None


def load_key(path: str, what: str = "--https-key"):
    data = _read(path, what)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSFileError(f"{what} {path}: the key is encrypted; give an unencrypted key "
                           "(openssl pkey -in KEY -out KEY.plain)") from None
    except ValueError as e:
        raise TLSFileError(f"{what} {path}: not a PEM private key ({e})") from None


def load_certificates(path: str, what: str) -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TLSFileError(f"{what} {path}: holds no PEM certificate")
    return certs


def _public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def trust_root(path: str, what: str):
    """A trust root of every certificate in ``path`` (a CA bundle)."""
    pems = [c.public_bytes(serialization.Encoding.PEM) for c in load_certificates(path, what)]
    return trustRootFromCertificates([Certificate.loadPEM(p) for p in pems])


def server_options(key_path: str, cert_path: str, client_ca: str | None = None) -> CertificateOptions:
    """Checked server options for the key and certificate (chain) files."""
    key = load_key(key_path)
    certs = load_certificates(cert_path, "--https-cert")
    leaf, chain = certs[0], certs[1:]
    if _public(leaf.public_key()) != _public(key.public_key()):
        raise TLSFileError(f"--https-key {key_path} does not match the certificate in --https-cert {cert_path} "
                           "(the first certificate in the file must be the server's own)")
    kw = {}
    if client_ca is not None:
        kw["trustRoot"] = trust_root(client_ca, "--client-ca")
    options = CertificateOptions(privateKey=key, certificate=leaf, extraCertChain=chain or None,
                                 raiseMinimumTo=TLSVersion.TLSv1_2, acceptableProtocols=ALPN, **kw)
    try:
        options.getContext()  # let OpenSSL check it now, not at the first connection
    except SSL.Error as e:
        raise TLSFileError(f"--https-key {key_path} / --https-cert {cert_path}: OpenSSL refused them: {e}") from None
    return options


@implementer(IOpenSSLServerConnectionCreator)
class ReloadableServerTLS:
    """The server TLS options in force; ``reload`` swaps in new ones (SIGHUP)."""

    def __init__(self, key_path: str, cert_path: str, client_ca: str | None = None) -> None:
        self.key_path = key_path
        self.cert_path = cert_path
        self.client_ca = client_ca
        self.options = server_options(key_path, cert_path, client_ca)

    def reload(self) -> None:
        """Read the files again; on any problem raise and keep the old options."""
        self.options = server_options(self.key_path, self.cert_path, self.client_ca)

    def serverConnectionForTLS(self, protocol) -> SSL.Connection:
        return SSL.Connection(self.options.getContext(), None)


def client_certificate(cert_path: str, key_path: str) -> dict:
    """The hub's own certificate for hosts that ask for one (``--client-ca`` on a
    host): key, leaf and any intermediates in the file, all sent, as for
    ``--https-cert`` (a host that trusts only the root still verifies it)."""
    key = load_key(key_path, "--host-client-key")
    certs = load_certificates(cert_path, "--host-client-cert")
    if _public(certs[0].public_key()) != _public(key.public_key()):
        raise TLSFileError(f"--host-client-key {key_path} does not match --host-client-cert {cert_path}")
    return {"privateKey": key, "certificate": certs[0], "extraCertChain": certs[1:] or None}


def client_creator(hostname: str, ca_path: str | None = None, certificate: dict | None = None):
    """Options for connecting to a host over TLS, verified by service-identity
    against ``ca_path`` (or the system trust store); ``certificate`` (from
    ``client_certificate``) is shown to hosts that require one."""
    root = trust_root(ca_path, "--host-ca") if ca_path else platformTrust()
    return optionsForClientTLS(hostname, trustRoot=root, acceptableProtocols=ALPN,
                               extraCertificateOptions=dict(certificate) if certificate else None)


__all__ = ["ReloadableServerTLS", "TLSFileError", "client_certificate", "client_creator", "server_options",
           "trust_root"]
