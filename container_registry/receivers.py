"""What the registry app does on other apps' signals: every project gets a cleanup
policy row when it is created (as in GitLab; the default of the nearest group that has
one, else the instance's), the project API's policy attributes and a group's default
policy are saved here, the instance's default policy settings are checked here, and a
push the token realm grants creates the repository row (and is noted for
``registry_check``: a push with no event after it means notifications are lost)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from container_registry import policy_defaults
from container_registry.models import ContainerExpirationPolicy
from container_registry.policies import update_cleanup_policy
from container_registry.registry_activity import note_push_granted
from container_registry.repositories import ensure_repository_exists
from gitlab_core.signals import cleanup_policy_defaults_submitted
from jwt_auth.signals import push_granted
from projects.models import Namespace, Project
from projects.signals import cleanup_policy_submitted, group_cleanup_policy_submitted


@receiver(post_save, sender=Project, dispatch_uid="create_default_cleanup_policy")
def create_default_cleanup_policy(sender, instance: Project, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        ContainerExpirationPolicy.objects.get_or_create(
            project=instance, defaults=policy_defaults.default_for(instance.namespace)
        )


@receiver(cleanup_policy_defaults_submitted, dispatch_uid="container_registry.check_instance_policy_default")
def check_instance_policy_default(sender, *, attributes: dict, current: dict, **kwargs) -> None:
    policy_defaults.check_instance_default(attributes, current)


@receiver(group_cleanup_policy_submitted, dispatch_uid="container_registry.save_group_policy_default")
def save_group_policy_default(sender, *, group: Namespace, attributes: dict | None, **kwargs) -> None:
    policy_defaults.update_group_default(group=group, attributes=attributes)


@receiver(cleanup_policy_submitted, dispatch_uid="container_registry.save_submitted_cleanup_policy")
def save_submitted_cleanup_policy(sender, *, project: Project, attributes: dict, **kwargs) -> None:
    update_cleanup_policy(project=project, attributes=attributes)


@receiver(push_granted, dispatch_uid="container_registry.create_pushed_repository")
def create_pushed_repository(sender, *, project: Project, name: str, **kwargs) -> None:
    # GitLab creates the repository row when it grants a push, before any event arrives.
    ensure_repository_exists(project=project, name=name)
    note_push_granted()
