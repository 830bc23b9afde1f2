"""Project deletion and container repositories.

Deleting a project must not orphan images in the registry: when the project API marks a
project ``pending_delete`` it sends ``project_deletion_requested``, and every repository
of the project is scheduled for deletion. The project row goes when its last repository
row goes.
"""

from __future__ import annotations

import logging

from django.db.models import QuerySet
from django.db.models.signals import post_delete
from django.dispatch import receiver

from container_registry.deletion import schedule_project_repositories_for_deletion
from container_registry.models import ContainerRepository
from projects.models import Project
from projects.signals import project_deletion_requested

logger = logging.getLogger(__name__)


@receiver(project_deletion_requested, sender=Project, dispatch_uid="schedule_repositories_of_deleted_project")
def schedule_repositories_of_deleted_project(sender, project: Project, **kwargs) -> None:
    scheduled = schedule_project_repositories_for_deletion(project=project)
    logger.info("project deletion scheduled its repositories", extra={"project_id": project.pk, "scheduled": scheduled})


@receiver(post_delete, sender=ContainerRepository, dispatch_uid="delete_drained_pending_project")
def delete_drained_pending_project(sender, instance: ContainerRepository, origin=None, **kwargs) -> None:
    # A project being deleted cascades to its repositories: nothing to do then.
    if isinstance(origin, Project) or (isinstance(origin, QuerySet) and origin.model is Project):
        return
    project = Project.objects.filter(pk=instance.project_id, pending_delete=True).first()
    if project is None or project.container_repositories.exists():
        return
    logger.info("last repository gone, deleting pending project", extra={"project_id": project.pk})
    project.delete()
