"""Password hashing with the standard library's scrypt KDF.

Owns: the stored hash format ``scrypt$n$r$p$salt$hash`` (base64 parts) and its verification.
Must never log, return or store a password in clear, and never compare hashes with ``==``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets

# Interactive-login parameters (scrypt paper / OWASP minimum): 16 MiB of memory per hash.
N, R, P = 2**14, 8, 1
#: The local sandbox lowers N through PASSWORD_SCRYPT_N (hashes stay valid: each stored hash
#: records its own N); deployed stages leave it unset.
MIN_N = 2**10


@functools.cache
def cost() -> int:
    raw = os.environ.get("PASSWORD_SCRYPT_N")
    if not raw:
        return N
    n = int(raw)
    if n < MIN_N or n & (n - 1):
        raise ValueError(f"PASSWORD_SCRYPT_N must be a power of two >= {MIN_N}, not {raw}")
    return n


_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    n = cost()
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=R, p=P, dklen=_DKLEN, maxmem=_MAXMEM
    )
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def burn_time(password: str) -> None:
    """Verify against a throw-away hash when the email is unknown, so "no such user" costs
    the same time as "wrong password" and login timing does not reveal registered emails."""
    verify_password(password, _dummy_hash())
