"""The registry's ``config.yml`` (distribution 2.8), generated from our own settings.

What the registry and this service must agree on comes from one place, so it cannot
disagree:

* ``auth.token``: the realm (our ``/jwt/auth``), the service (``REGISTRY_SERVICE``),
  the issuer (``REGISTRY_ISSUER``) and the certificate bundle, which holds the
  certificate of every configured key (``REGISTRY_KEY_PATH`` and, during a rotation,
  ``REGISTRY_EXTRA_KEY_PATHS``), so tokens signed by any of them are accepted;
* ``notifications``: our event receiver's URL, with ``REGISTRY_NOTIFICATION_SECRET``
  sent verbatim in ``Authorization``;
* ``storage.delete.enabled``: tag deletion and cleanup policies delete manifests;
* ``storage.maintenance.readonly``: on for garbage collection (``read_only``);
* ``http.secret``: derived from ``SECRET_KEY``, so every instance behind a load balancer
  gets the same one and regenerating the file does not change it.

The bundle: with one key, the registry reads that key's certificate file directly. With
several keys (a rotation), their certificates are written together to one file, which
the config names; the registry reads its bundle only at start, so restart it after a
rotation step. Paths are the registry's: when it runs on another machine, copy the
bundle there under the same path.

``build_config`` knows the file's shape and reads no setting (the end-to-end harness
uses it too); ``config_from_settings`` fills it from ours; ``config_differences`` names
what an existing file gets wrong (``registry_check --config``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from django.conf import settings
from django.utils.crypto import salted_hmac

from gitlab_core.errors import ServiceError

DEFAULT_STORAGE_ROOT = "/var/lib/registry"
HTTP_SECRET_SALT = "container_registry.registry_config.http_secret"
# The notifications endpoint: a 5 s answer is plenty for the receiver; an undelivered
# event is retried every second and later events wait behind it, so none is lost.
NOTIFICATION_TIMEOUT = "5s"
NOTIFICATION_THRESHOLD = 5
NOTIFICATION_BACKOFF = "1s"

HEADER = """\
# config.yml of the container registry (distribution 2.8), written by
# `manage.py registry_config`. Regenerate it instead of editing it: realm, service,
# issuer, certificate bundle and notification secret must match this service's settings.
# Run the registry without any REGISTRY_* environment variable: it reads each one as an
# override of this file.
"""


def wiring_error(message: str) -> ServiceError:
    return ServiceError(400, {"message": message})


@dataclass(frozen=True)
class Notifications:
    url: str
    secret: str
    timeout: str = NOTIFICATION_TIMEOUT
    threshold: int = NOTIFICATION_THRESHOLD
    backoff: str = NOTIFICATION_BACKOFF


def build_config(
    *,
    realm_url: str,
    service: str,
    issuer: str,
    cert_bundle: str | Path,
    listen: str,
    storage_root: str | Path,
    http_secret: str,
    notifications: Notifications | None,
    read_only: bool = False,
) -> dict:
    """The registry's configuration as a dict, ready for ``render``."""
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_root)},
            "delete": {"enabled": True},
            "maintenance": {"readonly": {"enabled": bool(read_only)}},
        },
        "http": {"addr": listen, "secret": http_secret},
        "auth": {
            "token": {
                "realm": realm_url,
                "service": service,
                "issuer": issuer,
                "rootcertbundle": str(cert_bundle),
            }
        },
    }
    if notifications is not None:
        config["notifications"] = {
            "endpoints": [
                {
                    "name": "gitlab",
                    "url": notifications.url,
                    "headers": {"Authorization": [notifications.secret]},
                    "timeout": notifications.timeout,
                    "threshold": notifications.threshold,
                    "backoff": notifications.backoff,
                }
            ]
        }
    return config


def render(config: dict) -> str:
    """``config`` as the text of a ``config.yml``, with a header comment."""
    return HEADER + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def config_from_settings(
    *,
    realm_url: str,
    notifications_url: str | None = None,
    storage_root: str = DEFAULT_STORAGE_ROOT,
    listen: str | None = None,
    read_only: bool = False,
    cert_bundle_path: str | None = None,
) -> dict:
    """The configuration for a registry wired to this service.

    ``realm_url`` is our public ``/jwt/auth`` URL (clients call it); ``notifications_url``
    defaults to the receiver on the realm's host (give another when the registry reaches
    us by an internal address). ``listen`` defaults to the port of ``REGISTRY_API_URL``.
    ``cert_bundle_path``: where the certificates of every key are written (and what the
    config names); required during a rotation, optional with one key.
    Raises ``ServiceError`` for a setting or option that cannot work.
    """
    from container_registry.receiver import PATH as NOTIFICATION_PATH

    realm_url = _checked_url(realm_url, "--realm-url")
    notifications_url = _checked_url(notifications_url or _origin(realm_url) + NOTIFICATION_PATH, "--notifications-url")
    secret = settings.REGISTRY_NOTIFICATION_SECRET
    if not secret:
        raise wiring_error(
            "REGISTRY_NOTIFICATION_SECRET is empty: the event receiver refuses every notification "
            "without it. Set it to a long random value (for example `openssl rand -hex 32`)."
        )
    return build_config(
        realm_url=realm_url,
        service=settings.REGISTRY_SERVICE,
        issuer=settings.REGISTRY_ISSUER,
        cert_bundle=write_certificate_bundle(cert_bundle_path),
        listen=listen or default_listen(),
        storage_root=storage_root,
        http_secret=salted_hmac(HTTP_SECRET_SALT, "registry", algorithm="sha256").hexdigest(),
        notifications=Notifications(url=notifications_url, secret=secret),
        read_only=read_only,
    )


def write_certificate_bundle(path: str | None) -> Path:
    """The bundle the registry trusts: written to ``path`` when given; otherwise the one
    key's own certificate file. Raises ``ServiceError`` when several keys need a file."""
    from jwt_auth.keys import KeyConfigurationError, certificate_bundle, configured_keys, write_atomically

    try:
        keys = configured_keys()
        bundle = certificate_bundle()
    except KeyConfigurationError as exc:
        raise wiring_error(str(exc))
    if path:
        write_atomically(Path(path), bundle.encode("ascii"), mode=0o644)
        return Path(path)
    if len(keys) > 1:
        raise wiring_error(
            f"{len(keys)} keys are trusted (REGISTRY_EXTRA_KEY_PATHS: a rotation), so the registry "
            "needs a bundle file that holds every certificate: pass --cert-bundle PATH"
        )
    return keys[0].cert_path.resolve()


def default_listen() -> str:
    """``:PORT`` of ``REGISTRY_API_URL``, the address this service calls the registry at."""
    parts = urlsplit(settings.REGISTRY_API_URL)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise wiring_error(f"REGISTRY_API_URL has an invalid port: {settings.REGISTRY_API_URL!r}")
    return f":{port}"


def read_config(path: str | Path) -> dict:
    """A registry config file as a dict. Raises ``ServiceError`` when it cannot be read."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise wiring_error(f"cannot read {path}: {exc.strerror}")
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise wiring_error(f"{path} is not valid YAML: {exc}")
    if not isinstance(config, dict):
        raise wiring_error(f"{path} is not a registry configuration")
    return config


def config_differences(config: dict) -> list[str]:
    """What in a registry's configuration disagrees with our settings, in words (no
    secret is ever shown)."""
    from container_registry.receiver import PATH as NOTIFICATION_PATH

    token = _section(config, "auth", "token")
    problems = []
    for key, ours, setting in (
        ("service", settings.REGISTRY_SERVICE, "the service"),
        ("issuer", settings.REGISTRY_ISSUER, "REGISTRY_ISSUER"),
    ):
        if token.get(key) != ours:
            problems.append(f"auth.token.{key} is {token.get(key)!r}, ours ({setting}) is {ours!r}")
    problems += _bundle_differences(token.get("rootcertbundle"))
    if _section(config, "storage", "delete").get("enabled") is not True:
        problems.append("storage.delete.enabled is not true: tag deletion and cleanup policies fail")
    endpoints = _section(config, "notifications").get("endpoints")
    ours = [
        endpoint
        for endpoint in (endpoints if isinstance(endpoints, list) else [])
        if isinstance(endpoint, dict)
        and not endpoint.get("disabled")
        and urlsplit(str(endpoint.get("url", ""))).path == NOTIFICATION_PATH
    ]
    if not ours:
        problems.append(f"no enabled notifications endpoint posts to {NOTIFICATION_PATH}")
    elif not any(_sends_our_secret(endpoint) for endpoint in ours):
        problems.append("the notifications endpoint does not send our REGISTRY_NOTIFICATION_SECRET")
    return problems


def _section(config: dict, *keys: str) -> dict:
    for key in keys:
        config = config.get(key) if isinstance(config, dict) else None
    return config if isinstance(config, dict) else {}


def _bundle_differences(path) -> list[str]:
    from cryptography import x509

    from jwt_auth.keys import configured_keys, libtrust_kid

    if not path:
        return ["auth.token.rootcertbundle is missing"]
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        return [f"cannot read the rootcertbundle {path} here ({exc.strerror})"]
    except ValueError:
        return [f"the rootcertbundle {path} holds no PEM certificate"]
    trusted = {libtrust_kid(certificate.public_key()) for certificate in certificates}
    return [
        f"the rootcertbundle {path} lacks the certificate of key {key.kid} ({key.path})"
        for key in configured_keys()
        if key.kid not in trusted
    ]


def _sends_our_secret(endpoint: dict) -> bool:
    headers = endpoint.get("headers")
    values = headers.get("Authorization") if isinstance(headers, dict) else None
    secret = settings.REGISTRY_NOTIFICATION_SECRET.encode()
    return bool(secret) and any(
        hmac.compare_digest(str(value).encode(), secret) for value in (values if isinstance(values, list) else [])
    )


def _checked_url(url: str, option: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise wiring_error(f"{option} must be an http:// or https:// URL, not {url!r}")
    return url


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
