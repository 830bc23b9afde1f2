"""What ``projects`` adds when ``gitlab_core`` creates users (``gitlab_core.signals``)."""

from __future__ import annotations

from django.dispatch import receiver

from gitlab_core.models import User
from gitlab_core.signals import top_level_path_taken, user_created
from projects.models import Namespace


@receiver(top_level_path_taken, dispatch_uid="projects.namespace_holds_path")
def namespace_holds_path(sender, *, path: str, **kwargs) -> bool:
    return Namespace.objects.filter(full_path_lower=path).exists()


@receiver(user_created, dispatch_uid="projects.create_personal_namespace")
def create_personal_namespace(sender, *, user: User, **kwargs) -> None:
    # A group taking the path meanwhile makes this INSERT fail: the caller's transaction
    # rolls the user back and answers that the username is taken.
    Namespace.objects.create(kind=Namespace.Kind.USER, name=user.name, path=user.username, owner=user)
