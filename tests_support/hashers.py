"""A password hasher that counts its work, for tests of what a failed login costs."""

from __future__ import annotations

from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher


class CountingMD5PasswordHasher(MD5PasswordHasher):
    """Django's MD5 hasher (the suite's fast hasher), counting each hash it computes
    (``verify`` hashes through ``encode``)."""

    encodings = 0

    def encode(self, password, salt):
        type(self).encodings += 1
        return super().encode(password, salt)


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Stand-in for the hasher of a later Django release: PBKDF2 with few iterations
    (fast), preferred over the suite's MD5, so that a correct login stores the password
    again under it."""

    iterations = 10
