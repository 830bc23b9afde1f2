"""The cleanup policy a new project starts with (our extension: GitLab has only
``container_expiration_policy_enabled_by_default``).

The instance's default is six application settings (``container_expiration_policy_
enabled_by_default`` and ``container_expiration_policy_default_<attribute>``); a group
may have its own (``Namespace.container_expiration_policy_default``, set with
``PUT /groups/:id`` and ``container_expiration_policy_attributes``), complete, and the
nearest group above a new project that has one wins. Every value is checked by the
rules of a project's policy (``policies.validate_cleanup_policy_attributes``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from container_registry.models import ContainerExpirationPolicy
from container_registry.policies import validate_cleanup_policy_attributes
from gitlab_core import audit
from gitlab_core.errors import ServiceError, bad_request
from gitlab_core.models import ApplicationSettings
from projects.models import Namespace

ATTRIBUTES = ("enabled", "cadence", "keep_n", "older_than", "name_regex", "name_regex_keep")


def instance_default(app_settings: ApplicationSettings | None = None) -> dict[str, Any]:
    app_settings = app_settings or ApplicationSettings.current()
    fields = ApplicationSettings.DEFAULT_POLICY_FIELDS
    return {attribute: getattr(app_settings, field) for field, attribute in fields.items()}


def default_for(namespace: Namespace) -> dict[str, Any]:
    """The default policy of projects created in ``namespace``: that of the nearest
    group (itself included) that has one, else the instance's. One read for the groups."""
    chain = namespace.self_and_ancestor_ids()
    own = dict(
        Namespace.objects.filter(pk__any=chain, container_expiration_policy_default__isnull=False).values_list(
            "pk", "container_expiration_policy_default"
        )
    )
    for namespace_id in chain:
        if namespace_id in own:
            return {**instance_default(), **own[namespace_id]}
    return instance_default()


def checked(attributes: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``attributes`` applied, checked as a project policy would be;
    raises ``ServiceError`` (400, GitLab's shapes) otherwise."""
    current = ContainerExpirationPolicy(**base)
    changes = validate_cleanup_policy_attributes(attributes=attributes, current=current)
    return {**base, **changes}


def check_instance_default(attributes: dict[str, Any], current: dict[str, Any]) -> None:
    """``checked`` for the application settings: a problem is named by its setting
    (``{"message": {"container_expiration_policy_default_cadence": [...]}}``)."""
    try:
        checked(attributes, current)
    except ServiceError as exc:
        problems = exc.body.get("message")
        if isinstance(problems, dict):
            setting_of = {attribute: name for name, attribute in ApplicationSettings.DEFAULT_POLICY_FIELDS.items()}
            renamed = {setting_of.get(key.rpartition(".")[2], key): texts for key, texts in problems.items()}
            raise bad_request(renamed) from None
        raise


def update_group_default(*, group: Namespace, attributes: dict[str, Any] | None) -> Namespace:
    """Set a group's default policy from ``container_expiration_policy_attributes``
    (keys not sent take the value the group inherits now), or remove it (None: the
    group inherits again). Audited per attribute."""
    with transaction.atomic():
        group = Namespace.objects.select_for_update().get(pk=group.pk)
        before = group.container_expiration_policy_default
        if attributes is None:
            after = None
        else:
            base = {**(default_for(group.parent) if group.parent_id else instance_default()), **(before or {})}
            after = checked(attributes, {key: base[key] for key in ATTRIBUTES})
        group.container_expiration_policy_default = after
        group.save(update_fields=["container_expiration_policy_default"])
        audit.record_changes(
            "group_cleanup_policy_default_updated",
            entity=group,
            before=before or {},
            after=after or dict.fromkeys(before or {}),
            target=group,
            target_details=f"default cleanup policy of {group.full_path}",
        )
    return group
