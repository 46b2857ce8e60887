"""The shared secret between hubs and hosts (``--hub-secret-file``, SPEC §5/§6).

The file holds one secret per line (blank lines and ``#`` comments ignored).
A hub sends the first one in ``X-CoCalc-Hub-Secret``; a host accepts any of
them — so a secret is rotated without a moment where hubs and hosts disagree:
add the new line on the hosts, switch the hubs, then drop the old line
(docs/security.md).  Comparisons take constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac

HEADER = b"X-CoCalc-Hub-Secret"
HEADER_LOWER = HEADER.lower()


class SecretFileError(Exception):
    """The file cannot be read or holds no secret; the message names it."""


def parse_secrets(text: str) -> tuple[bytes, ...]:
    lines = (line.strip() for line in text.splitlines())
    return tuple(line.encode("utf-8") for line in lines if line and not line.startswith("#"))


def read_secrets(path: str) -> tuple[bytes, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            secrets = parse_secrets(f.read())
    except (OSError, UnicodeDecodeError) as e:
        raise SecretFileError(f"--hub-secret-file {path}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
    if not secrets:
        raise SecretFileError(f"--hub-secret-file {path}: holds no secret (one per line)")
    bad = [s for s in secrets if any(c < 0x21 or c == 0x7F for c in s)]
    if bad:
        raise SecretFileError(f"--hub-secret-file {path}: a secret may not contain spaces or control characters")
    return secrets


def secret_matches(req, secrets: tuple[bytes, ...]) -> bool:
    """Exactly one ``X-CoCalc-Hub-Secret`` header, equal to one of ``secrets``."""
    values = req.get_all(HEADER_LOWER)
    if len(values) != 1:
        return False
    value = values[0]
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(value, secret)  # no early exit: every secret is compared
    return ok


__all__ = ["HEADER", "HEADER_LOWER", "SecretFileError", "parse_secrets", "read_secrets", "secret_matches"]
