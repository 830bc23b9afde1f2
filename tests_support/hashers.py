"""A password hasher that counts its work, for tests of what a failed login costs."""

from __future__ import annotations

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingMD5PasswordHasher(MD5PasswordHasher):
    """Django's MD5 hasher (the suite's fast hasher), counting each hash it computes
    (``verify`` hashes through ``encode``)."""

    encodings = 0

    def encode(self, password, salt):
        type(self).encodings += 1
        return super().encode(password, salt)
