"""Which registry answers, and when it last told us something.

``registry_info`` reads the registry's ``GET /v2/`` headers as GitLab does: GitLab's own
registry sends ``Gitlab-Container-Registry-Version`` (and ``-Features``, a comma list,
and ``-Database-Enabled``), so its vendor is ``gitlab`` with that version; any other
registry (CNCF distribution 2.8 sends only ``Docker-Distribution-Api-Version:
registry/2.0``) is vendor ``other`` without a version. ``registry_status`` adds when the
last notification arrived; readiness (``/-/readiness``), the admin's front page and
``manage.py registry_identity`` all use these two.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from django.db import DatabaseError

from container_registry.client import RegistryClient, get_client
from container_registry.errors import RegistryError, RegistryUnauthorized
from container_registry.models import RegistryEvent

VERSION_HEADER = "gitlab-container-registry-version"
FEATURES_HEADER = "gitlab-container-registry-features"
DATABASE_HEADER = "gitlab-container-registry-database-enabled"
API_VERSION_HEADER = "docker-distribution-api-version"

# Seconds a status probe waits for the registry (readiness answers within 2 s).
PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class RegistryInfo:
    vendor: str  # "gitlab" or "other"
    version: str  # GitLab's registry only; "" otherwise
    features: list[str] = field(default_factory=list)
    database_enabled: bool = False
    api_version: str = ""  # Docker-Distribution-Api-Version, e.g. "registry/2.0"


def registry_info(*, client: RegistryClient | None = None, timeout: float | None = None) -> RegistryInfo:
    """The registry's vendor, version and features from ``GET /v2/``. Raises the
    registry client's errors."""
    headers = (client or get_client()).ping(timeout=timeout)
    version = headers.get(VERSION_HEADER, "").strip()
    return RegistryInfo(
        vendor="gitlab" if version else "other",
        version=version,
        features=[item.strip() for item in headers.get(FEATURES_HEADER, "").split(",") if item.strip()],
        database_enabled=headers.get(DATABASE_HEADER, "").strip().lower() == "true",
        api_version=headers.get(API_VERSION_HEADER, "").strip(),
    )


@dataclass(frozen=True)
class RegistryStatus:
    info: RegistryInfo | None  # None: the registry did not answer as a registry
    error: str  # what went wrong, for an operator; "" when ``info`` is set
    detail: str  # the client's error (internal URL paths), for monitoring addresses only
    last_event_at: dt.datetime | None  # the newest recorded notification event

    def as_dict(self) -> dict:
        """JSON-ready fields: vendor, version, features, api_version, last_event_at."""
        fields = asdict(self.info) if self.info else {}
        fields.pop("database_enabled", None)
        return {**fields, "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None}


def last_event_at() -> dt.datetime | None:
    """When the newest recorded event arrived. Ids grow with time: the primary key's
    index answers at once, where ``received_at`` has a BRIN index on PostgreSQL that
    cannot find a maximum without reading every range."""
    return RegistryEvent.objects.order_by("-pk").values_list("received_at", flat=True).first()


def registry_status(*, timeout: float = PROBE_TIMEOUT) -> RegistryStatus:
    """The registry's identity as it answers now, and the last event's time (None too
    when the database cannot say). Errors are reported, not raised."""
    try:
        info, error, detail = registry_info(timeout=timeout), "", ""
    except RegistryUnauthorized as exc:
        info, detail = None, str(exc)
        error = (
            "the registry refuses our tokens: its auth.token issuer, service and rootcertbundle "
            "must match REGISTRY_ISSUER and the signing key's certificate"
        )
    except RegistryError as exc:
        info, detail = None, str(exc)
        error = "the registry does not answer GET /v2/: check that it runs and REGISTRY_API_URL reaches it"
    try:
        last = last_event_at()
    except DatabaseError:  # the database check reports it
        last = None
    return RegistryStatus(info=info, error=error, detail=detail, last_event_at=last)
