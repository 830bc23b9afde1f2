"""Signing keys of the token realm: generation, loading, key ids, certificates, JWKS.

Configuration:

* ``REGISTRY_KEY_PATH``: the PEM private key that signs every token (RSA or EC P-256;
  the algorithm follows the key type: RS256 or ES256).
* ``REGISTRY_EXTRA_KEY_PATHS``: more keys kept for rotation. They sign nothing, but
  their certificates stay in the bundle and their public keys in the JWKS, so tokens
  they signed keep working until those expire.
* Certificates: ``REGISTRY_CERT_PATH`` for the signing key when it is set; otherwise,
  and for every extra key, the key path with its suffix replaced by ``.crt``
  (``registry.key`` -> ``registry.crt``). A key without a certificate still signs
  (with ``kid`` only, no ``x5c``) but cannot be put in the bundle.

Keys are parsed once per process and parsed again when a file's mtime or size changes
(one ``stat`` per file and request), so a rotated key is picked up without a restart.
When ``REGISTRY_KEY_PATH`` is left at its default (under ``VAR_DIR``) and the file is
missing, a key pair is generated there so a fresh checkout works; an explicitly
configured but missing key is an error, because a silently generated key would not be
trusted by the registry.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gitlab_core.ttl_cache import TTLCache

RSA_KEY_SIZE = 2048
CERT_VALIDITY = timedelta(days=3650)
SUPPORTED_ALGORITHMS = ("RS256", "ES256")


class KeyConfigurationError(ImproperlyConfigured):
    """The signing key is missing or unusable."""


@dataclass(frozen=True)
class SigningKey:
    """One configured key: the private key, its algorithm, kid and certificate."""

    path: Path
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    algorithm: str
    kid: str
    cert_path: Path
    certificate_pem: str | None
    # Standard base64 of the DER certificate: the JWS ``x5c`` chain of one element.
    x5c: tuple[str, ...]

    @property
    def public_key(self):
        return self.private_key.public_key()


def libtrust_kid(public_key) -> str:
    """The key id distribution 2.8 looks up: base32 of the first 30 bytes of
    SHA-256(DER SubjectPublicKeyInfo), unpadded, in 12 colon-separated groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def algorithm_for(private_key) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
        return "ES256"
    raise KeyConfigurationError("registry signing keys must be RSA or EC P-256 (RS256 / ES256)")


def default_cert_path(key_path: Path) -> Path:
    """``registry.key`` -> ``registry.crt``; ``key`` -> ``key.crt``."""
    key_path = Path(key_path)
    return key_path.with_suffix(".crt") if key_path.suffix else key_path.with_name(key_path.name + ".crt")


def generate_key_pair(*, key_path: Path, cert_path: Path, algorithm: str = "RS256") -> str:
    """Write a new PEM private key (mode 0600) and a self-signed certificate for it.

    The certificate is what the registry's ``auth.token.rootcertbundle`` must contain.
    Returns the libtrust kid. Files are written atomically (temporary file, rename).
    Raises ``ValueError`` for an unsupported algorithm.
    """
    if algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    elif algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported algorithm {algorithm!r}; choose one of {', '.join(SUPPORTED_ALGORITHMS)}")
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = _self_signed_certificate(private_key).public_bytes(serialization.Encoding.PEM)
    # The certificate goes first: a process that sees the new key also finds its cert.
    write_atomically(Path(cert_path), cert_pem, mode=0o644)
    write_atomically(Path(key_path), key_pem, mode=0o600)
    return libtrust_kid(private_key.public_key())


def _self_signed_certificate(private_key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{settings.REGISTRY_ISSUER} token signing")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_key(key_path: Path, cert_path: Path | None = None) -> SigningKey:
    """Parse one PEM private key and its certificate (if the file exists)."""
    key_path = Path(key_path)
    cert_path = Path(cert_path) if cert_path else default_cert_path(key_path)
    try:
        private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyConfigurationError(
            f"registry signing key {key_path} does not exist; create it with "
            "`python manage.py registry_keys --key PATH --cert PATH`"
        )
    except (ValueError, TypeError) as exc:
        raise KeyConfigurationError(f"registry signing key {key_path} is not an unencrypted PEM key: {exc}")
    algorithm = algorithm_for(private_key)
    kid = libtrust_kid(private_key.public_key())
    certificate_pem, x5c = None, ()
    if cert_path.exists():
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise KeyConfigurationError(f"certificate {cert_path} does not belong to key {key_path}")
        certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        x5c = (base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii"),)
    return SigningKey(
        path=key_path,
        private_key=private_key,
        algorithm=algorithm,
        kid=kid,
        cert_path=cert_path,
        certificate_pem=certificate_pem,
        x5c=x5c,
    )


def _configured_paths() -> list[tuple[Path, Path]]:
    """(key, certificate) paths, the signing key first."""
    signing = Path(settings.REGISTRY_KEY_PATH)
    cert_setting = getattr(settings, "REGISTRY_CERT_PATH", None)
    pairs = [(signing, Path(cert_setting) if cert_setting else default_cert_path(signing))]
    for extra in settings.REGISTRY_EXTRA_KEY_PATHS:
        extra_path = Path(extra)
        if extra_path != signing:
            pairs.append((extra_path, default_cert_path(extra_path)))
    return pairs


def _is_default_key_path(path: Path) -> bool:
    return path == Path(settings.VAR_DIR) / "registry.key"


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


# Key files are stat'ed at most this often (per process and configuration): a rotated
# key is picked up within a second, and a request does not pay for three stat calls.
RECHECK_SECONDS = 1.0
_checked = TTLCache(ttl=lambda: RECHECK_SECONDS, max_entries=8, max_bytes=64 * 1024)
_generate_lock = threading.Lock()


def configured_keys() -> tuple[SigningKey, ...]:
    """Every configured key, the signing key first; re-read when a file changed."""
    config = (
        settings.REGISTRY_KEY_PATH,
        getattr(settings, "REGISTRY_CERT_PATH", None),
        tuple(settings.REGISTRY_EXTRA_KEY_PATHS),
    )
    keys = _checked.get(config)
    if keys is not None:
        return keys
    pairs = _configured_paths()
    signing_key_path = pairs[0][0]
    if not signing_key_path.exists() and _is_default_key_path(signing_key_path):
        with _generate_lock:
            if not signing_key_path.exists():
                generate_key_pair(key_path=signing_key_path, cert_path=pairs[0][1])
    keys = _load_keys(tuple((key, cert, _stamp(key), _stamp(cert)) for key, cert in pairs))
    # Keys are a few kilobytes of parsed objects each; the entry's size is counted flat.
    _checked.set(config, keys, size=4096 * len(keys))
    return keys


@lru_cache(maxsize=8)
def _load_keys(stamps: tuple[tuple[Path, Path, tuple[int, int] | None, tuple[int, int] | None], ...]):
    """The keys of ``stamps`` (paths with their mtime and size): parsed again only when a
    file changed."""
    return tuple(load_key(key, cert) for key, cert, _key_stamp, _cert_stamp in stamps)


def signing_key() -> SigningKey:
    """The key that signs new tokens."""
    return configured_keys()[0]


def certificate_bundle() -> str:
    """PEM certificates of every configured key: the registry's ``rootcertbundle``.

    Raises ``KeyConfigurationError`` when a key has no certificate file.
    """
    parts = []
    for key in configured_keys():
        if key.certificate_pem is None:
            raise KeyConfigurationError(f"key {key.path} has no certificate at {key.cert_path}")
        parts.append(key.certificate_pem)
    return "".join(parts)


def jwks() -> dict:
    """The public keys as a JSON Web Key Set (RFC 7517), each with its libtrust kid."""
    entries = []
    for key in configured_keys():
        if key.algorithm == "RS256":
            jwk = RSAAlgorithm.to_jwk(key.public_key, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(key.public_key, as_dict=True)
        jwk.update({"kid": key.kid, "use": "sig", "alg": key.algorithm})
        if key.x5c:
            jwk["x5c"] = list(key.x5c)
        entries.append(jwk)
    return {"keys": entries}
