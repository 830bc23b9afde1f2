"""Claims, headers and keys of the tokens: what distribution 2.8 checks."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gitlab_core.models import ApplicationSettings
from jwt_auth import keys
from jwt_auth.keys import certificate_bundle, generate_key_pair, jwks, libtrust_kid, signing_key
from jwt_auth.tests.conftest import KeyPair
from jwt_auth.tokens import decode_user_token, mint_registry_token

pytestmark = pytest.mark.django_db


def _openssl_kid(cert_path) -> str:
    """libtrust's key id recipe (SHA-256 of the DER public key, first 240 bits, base32 in
    groups of four), run with the real openssl."""
    recipe = (
        f"openssl x509 -in {cert_path} -pubkey -noout | openssl pkey -pubin -outform DER "
        "| openssl dgst -sha256 -binary | head -c 30 | base32 -w0 | tr -d = | fold -w4 | paste -sd:"
    )
    return subprocess.run(["sh", "-c", recipe], capture_output=True, text=True, check=True).stdout.strip()


def test_kid_matches_the_openssl_recipe(rsa_key):
    assert rsa_key.kid == _openssl_kid(rsa_key.cert_path)
    assert len(rsa_key.kid) == 59 and rsa_key.kid.count(":") == 11
    assert libtrust_kid(rsa_key.public_key) == rsa_key.kid


def test_es256_kid_matches_the_openssl_recipe(tmp_path):
    pair = KeyPair(tmp_path, "ec", algorithm="ES256")
    assert pair.kid == _openssl_kid(pair.cert_path)


def test_user_token_has_gitlabs_claims_and_headers(realm, world, api_token, rsa_key):
    response = realm.get("repository:acme/platform/svc:pull", creds=("r", api_token(world["users"]["reporter"])))
    token = response.json()["token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == rsa_key.kid
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    assert leaf.public_bytes(serialization.Encoding.PEM) == rsa_key.cert_path.read_bytes()
    claims = realm.claims(response)
    assert claims["iss"] == "gitlab-issuer"
    assert claims["aud"] == "container_registry"
    assert claims["sub"] == "reporter"
    assert all(isinstance(claims[c], int) for c in ("iat", "nbf", "exp"))
    assert claims["nbf"] == claims["iat"] - 5
    assert claims["exp"] == claims["iat"] + 300
    uuid.UUID(claims["jti"])
    assert claims["auth_type"] == "personal_access_token"
    nested = jwt.decode(claims["user"], rsa_key.public_key, algorithms=["RS256"])
    assert nested["exp"] == nested["iat"] + 60
    assert nested["user_info"] == {
        "token_type": "personal_access_token",
        "username": "reporter",
        "user_id": world["users"]["reporter"].pk,
    }
    assert decode_user_token(claims["user"]) == nested["user_info"]


def test_token_lifetime_follows_the_admin_setting(realm, world, api_token):
    settings_row = ApplicationSettings.current()
    settings_row.container_registry_token_expire_delay = 15
    settings_row.save()
    response = realm.get(creds=("o", api_token(world["users"]["owner"])))
    claims = realm.claims(response)
    assert response.json()["expires_in"] == 900
    assert claims["exp"] - claims["iat"] == 900


def test_anonymous_token_has_no_subject_and_no_user_info(realm, world, rsa_key):
    project = world["project"]
    project.visibility = 20
    project.save()
    claims = realm.claims(realm.get("repository:acme/platform/svc:pull"))
    assert "sub" not in claims
    assert claims["auth_type"] == "none"
    assert jwt.decode(claims["user"], rsa_key.public_key, algorithms=["RS256"])["user_info"] is None


def test_internal_tokens_carry_no_auth_type_or_user():
    token, expires_in = mint_registry_token(access=[{"type": "repository", "name": "a/b", "actions": ["*"]}])
    claims = jwt.decode(token, signing_key().public_key, algorithms=["RS256"], audience="container_registry")
    assert expires_in == 300
    assert "auth_type" not in claims and "user" not in claims and "sub" not in claims
    assert claims["access"][0]["actions"] == ["*"]


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_trusted(settings, rsa_key, old_rsa_key, tmp_path):
    settings.REGISTRY_EXTRA_KEY_PATHS = [str(old_rsa_key.key_path)]
    token, _ = mint_registry_token(access=[])
    assert jwt.get_unverified_header(token)["kid"] == rsa_key.kid
    bundle = certificate_bundle()
    assert bundle == rsa_key.cert_path.read_text() + old_rsa_key.cert_path.read_text()
    assert [k["kid"] for k in jwks()["keys"]] == [rsa_key.kid, old_rsa_key.kid]


def test_changing_the_key_file_is_picked_up_without_restart_within_the_recheck_window(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(keys, "RECHECK_SECONDS", 0.2)
    key_path, cert_path = tmp_path / "k.key", tmp_path / "k.crt"
    first = generate_key_pair(key_path=key_path, cert_path=cert_path)
    settings.REGISTRY_KEY_PATH = str(key_path)
    settings.REGISTRY_CERT_PATH = str(cert_path)
    assert signing_key().kid == first
    second = generate_key_pair(key_path=key_path, cert_path=cert_path)
    assert second != first
    # Key files are stat'ed at most once per window.
    time.sleep(0.25)
    assert signing_key().kid == second


def test_es256_key_signs_es256_tokens(settings, tmp_path):
    pair = KeyPair(tmp_path, "ec", algorithm="ES256")
    settings.REGISTRY_KEY_PATH = str(pair.key_path)
    settings.REGISTRY_CERT_PATH = str(pair.cert_path)
    token, _ = mint_registry_token(access=[])
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert jwt.decode(token, pair.public_key, algorithms=["ES256"], audience="container_registry")["iss"]
    assert jwks()["keys"][0]["kty"] == "EC"


def test_jwks_endpoint_serves_the_public_keys(client, rsa_key):
    body = client.get("/jwt/jwks").json()
    key = body["keys"][0]
    assert key["kid"] == rsa_key.kid and key["kty"] == "RSA" and key["alg"] == "RS256"
    assert "d" not in key
    public = jwt.algorithms.RSAAlgorithm.from_jwk(key)
    assert public.public_numbers() == rsa_key.public_key.public_numbers()


def test_missing_configured_key_is_a_503_not_a_crash(realm, world, api_token, settings, tmp_path):
    settings.REGISTRY_KEY_PATH = str(tmp_path / "absent.key")
    settings.REGISTRY_CERT_PATH = None
    response = realm.get(creds=("o", api_token(world["users"]["owner"])))
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert not (tmp_path / "absent.key").exists()


def test_default_key_is_generated_on_first_use(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.REGISTRY_KEY_PATH = str(tmp_path / "registry.key")
    settings.REGISTRY_CERT_PATH = None
    key = signing_key()
    assert (tmp_path / "registry.key").stat().st_mode & 0o777 == 0o600
    assert key.kid == _openssl_kid(tmp_path / "registry.crt")


def test_certificate_of_another_key_is_refused(settings, rsa_key, old_rsa_key):
    settings.REGISTRY_CERT_PATH = str(old_rsa_key.cert_path)
    with pytest.raises(Exception, match="does not belong"):
        signing_key()
