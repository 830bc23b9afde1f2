"""Response shapes of groups, projects, members and deploy tokens, as GitLab's API renders them."""

from __future__ import annotations

from gitlab_core.api.entities import user_basic
from gitlab_core.api.format import base_url, iso, iso_date
from projects.models import DeployToken, Namespace, Project, RegistryAccessLevel


def namespace_web_url(namespace: Namespace, request) -> str:
    if namespace.is_group:
        return f"{base_url(request)}/groups/{namespace.full_path}"
    return f"{base_url(request)}/{namespace.full_path}"


def namespace(ns: Namespace, request) -> dict:
    return {
        "id": ns.pk,
        "name": ns.name,
        "path": ns.path,
        "kind": ns.kind,
        "full_path": ns.full_path,
        "parent_id": ns.parent_id,
        "avatar_url": None,
        "web_url": namespace_web_url(ns, request),
    }


def group(ns: Namespace, request) -> dict:
    return {
        "id": ns.pk,
        "name": ns.name,
        "path": ns.path,
        "full_name": ns.full_name,
        "full_path": ns.full_path,
        "description": ns.description,
        "visibility": ns.visibility_name,
        "parent_id": ns.parent_id,
        "web_url": namespace_web_url(ns, request),
        "avatar_url": None,
        "created_at": iso(ns.created_at),
        "project_creation_level": "developer",
        "subgroup_creation_level": "maintainer",
        "request_access_enabled": ns.request_access_enabled,
        # Our extension: the default cleanup policy of new projects below the group, if
        # the group has its own (else the nearest group above's, or the instance's).
        "container_expiration_policy": ns.container_expiration_policy_default,
    }


def cleanup_policy(project: Project) -> dict | None:
    policy = getattr(project, "container_expiration_policy", None)
    if policy is None:
        return None
    return {
        "cadence": policy.cadence,
        "enabled": policy.enabled,
        "keep_n": policy.keep_n,
        "older_than": policy.older_than,
        "name_regex": policy.name_regex,
        "name_regex_keep": policy.name_regex_keep,
        "next_run_at": iso(policy.next_run_at),
    }


def project_simple(project: Project, request) -> dict:
    return {
        "id": project.pk,
        "name": project.name,
        "name_with_namespace": project.name_with_namespace,
        "path": project.path,
        "path_with_namespace": project.full_path,
        "description": project.description,
        "created_at": iso(project.created_at),
        "last_activity_at": iso(project.last_activity_at),
        "default_branch": None,
        "web_url": f"{base_url(request)}/{project.full_path}",
        "avatar_url": None,
        "namespace": namespace(project.namespace, request),
    }


def project(project: Project, request) -> dict:
    data = project_simple(project, request)
    data.update(
        {
            "visibility": project.visibility_name,
            "archived": False,
            "empty_repo": True,
            "creator_id": project.creator_id,
            "container_registry_enabled": project.container_registry_access_level != RegistryAccessLevel.DISABLED,
            "container_registry_access_level": project.container_registry_access_level,
            "container_registry_image_prefix": project.container_registry_image_prefix,
            "container_expiration_policy": cleanup_policy(project),
        }
    )
    return data


def statistics(*, container_registry_size: int) -> dict:
    """GitLab's ProjectStatistics entity. Only the registry is ours: the sizes of what
    GitLab also stores (Git, wiki, LFS, artifacts, packages, ...) are 0, and so is
    ``storage_size``, which in GitLab does not include the registry either."""
    return {
        "commit_count": 0,
        "storage_size": 0,
        "repository_size": 0,
        "wiki_size": 0,
        "lfs_objects_size": 0,
        "job_artifacts_size": 0,
        "pipeline_artifacts_size": 0,
        "packages_size": 0,
        "snippets_size": 0,
        "uploads_size": 0,
        "container_registry_size": container_registry_size,
    }


def member(row, request) -> dict:
    """A ``GroupMember`` or ``ProjectMember`` row as GitLab's Member entity."""
    data = user_basic(row.user, request)
    data.update(
        {
            "access_level": row.access_level,
            "created_at": iso(row.created_at),
            "expires_at": iso_date(row.expires_at),
            "membership_state": "active",
            "created_by": user_basic(row.created_by, request) if row.created_by is not None else None,
        }
    )
    return data


def deploy_token(token: DeployToken, secret: str | None = None) -> dict:
    data = {
        "id": token.pk,
        "name": token.name,
        "username": token.username,
        "expires_at": iso(token.expires_at),
        "revoked": token.revoked,
        "expired": token.expired,
        "scopes": list(token.scopes),
    }
    if secret is not None:
        data["token"] = secret
    return data
