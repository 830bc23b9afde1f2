"""Every project gets a cleanup policy row when it is created (as in GitLab)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from container_registry.models import ContainerExpirationPolicy
from gitlab_core.models import ApplicationSettings
from projects.models import Project


@receiver(post_save, sender=Project, dispatch_uid="create_default_cleanup_policy")
def create_default_cleanup_policy(sender, instance: Project, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        ContainerExpirationPolicy.objects.get_or_create(
            project=instance,
            defaults={"enabled": ApplicationSettings.current().container_expiration_policy_enabled_by_default},
        )
