"""The bare signer: a minimal WSGI app that only signs a fixed claim set with the same
key as the service (``BARE_KEY_PATH``) and ``BARE_CLAIMS_PATH`` (JSON claims of a real
token, so the payload has the same size). The ceiling the realm is compared against."""

from __future__ import annotations

import json
import os
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization

from jwt_auth.keys import algorithm_for, libtrust_kid

_key = serialization.load_pem_private_key(open(os.environ["BARE_KEY_PATH"], "rb").read(), password=None)
_alg = algorithm_for(_key)
_headers = {"kid": libtrust_kid(_key.public_key())}
_claims = json.loads(open(os.environ["BARE_CLAIMS_PATH"]).read())


def app(environ, start_response):
    now = int(time.time())
    claims = {**_claims, "jti": str(uuid.uuid4()), "iat": now, "nbf": now - 5, "exp": now + 300}
    token = jwt.encode(claims, _key, algorithm=_alg, headers=_headers)
    body = json.dumps({"token": token, "access_token": token, "expires_in": 300, "issued_at": "x"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
