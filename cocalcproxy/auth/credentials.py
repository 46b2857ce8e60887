"""A hub user's credentials in a request, and what must be removed before forwarding.

Accepted, in this order (the first one present is the one used, SPEC §6):

1. the session cookie (``--cookie-name``, default ``remember_me``);
2. an ``api_key`` cookie;
3. ``Authorization: Bearer KEY``;
4. ``Authorization: Basic`` with the key as the user name (any password).

When the base URL is not ``/``, both cookie names carry the URL-encoded base
URL without its trailing slash in front, as CoCalc names them (``/foo/`` →
``%2Ffooremember_me``).  Only the hash of a secret is ever looked up or
stored: lowercase hex SHA-256.  Whatever happens, the hub's cookies never
reach a backend, nor an Authorization header that carried a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from urllib.parse import quote

from ..http1.cookies import cookie_values

SESSION = "session"
API_KEY = "api_key"


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: bytes
    api_key: bytes
    #: both names, for the header policy: made once, not per request
    both: frozenset[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "both", frozenset((self.session, self.api_key)))

    @classmethod
    def for_base(cls, base_url: str, cookie_name: str = "remember_me") -> "CookieNames":
        prefix = "" if base_url == "/" else quote(base_url.rstrip("/"), safe="")
        return cls((prefix + cookie_name).encode("latin-1"), (prefix + "api_key").encode("latin-1"))


@dataclass(frozen=True, slots=True)
class Credential:
    """A secret a request presents: a session (``remember_me``) or an API key."""

    kind: str  # SESSION or API_KEY
    hash: str  # lowercase hex SHA-256 of the secret
    from_authorization: bool = False  # it came in the Authorization header


def secret_hash(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


def _authorization_key(value: bytes) -> bytes | None:
    scheme, _, rest = value.strip().partition(b" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme == b"bearer" and rest:
        return rest
    if scheme == b"basic" and rest:
        try:
            decoded = base64.b64decode(rest, validate=True)
        except (binascii.Error, ValueError):
            return None
        user = decoded.partition(b":")[0]
        return user or None
    return None


def find_credential(req, names: CookieNames) -> Credential | None:
    """The credential ``req`` presents, or None (then: 401)."""
    cookies = req.get_all(b"cookie")
    if cookies:
        for kind, name in ((SESSION, names.session), (API_KEY, names.api_key)):
            for value in cookie_values(cookies, name):
                if value:
                    return Credential(kind, secret_hash(value))
    authorization = req.get_all(b"authorization")
    if len(authorization) == 1:
        key = _authorization_key(authorization[0])
        if key is not None:
            return Credential(API_KEY, secret_hash(key), from_authorization=True)
    return None


def stripped(credential: Credential | None) -> frozenset[bytes]:
    """Header names (lower case) the hub removes before forwarding: the hub
    secret a client might have sent, and an Authorization header used for auth."""
    if credential is not None and credential.from_authorization:
        return _STRIP_WITH_AUTHORIZATION
    return _STRIP


_STRIP = frozenset((b"x-cocalc-hub-secret",))
_STRIP_WITH_AUTHORIZATION = _STRIP | {b"authorization"}


__all__ = ["API_KEY", "CookieNames", "Credential", "SESSION", "find_credential", "secret_hash", "stripped"]
