"""``/projects/:id/registry/protection/repository/rules[/:rule_id]``: list, create,
update (``PATCH``), delete the project's container repository protection rules
(Maintainer and up, as GitLab's ``admin_container_image``)."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core.api.views import ApiView
from gitlab_core.errors import forbidden, not_found
from projects import permissions, protection, selectors
from projects.models import ContainerRepositoryProtectionRule, Project, ProtectionLevel

LEVEL_FIELDS = ("minimum_access_level_for_push", "minimum_access_level_for_delete")


def rule_entity(rule: ContainerRepositoryProtectionRule) -> dict:
    def label(level: int | None) -> str | None:
        return ProtectionLevel(level).label if level is not None else None

    return {
        "id": rule.pk,
        "project_id": rule.project_id,
        "repository_path_pattern": rule.repository_path_pattern,
        "minimum_access_level_for_push": label(rule.minimum_access_level_for_push),
        "minimum_access_level_for_delete": label(rule.minimum_access_level_for_delete),
    }


class _RulesView(ApiView):
    def managed_project(self, raw_id: str) -> Project:
        user = self.require_user()
        project = selectors.find_project(user, self.decode_id(raw_id))
        if not permissions.can(user, permissions.ADMIN_CONTAINER_IMAGE, project):
            raise forbidden()
        return project

    def rule_fields(self, *, create: bool) -> dict:
        params = self.params()
        fields = {}
        if create or params.has("repository_path_pattern"):
            fields["repository_path_pattern"] = params.str(
                "repository_path_pattern", required=create, max_length=255, allow_blank=False
            )
        for name in LEVEL_FIELDS:
            if params.has(name):
                fields[name] = params.raw(name)
        params.check()
        for name in LEVEL_FIELDS:
            if name in fields:
                fields[name] = protection.level_from_name(fields[name], name)
        return fields


class ProtectionRulesView(_RulesView):
    def get(self, request, project_id: str):
        project = self.managed_project(project_id)
        rules = ContainerRepositoryProtectionRule.objects.filter(project=project).order_by("id")
        return self.paginated(rules, rule_entity)

    def post(self, request, project_id: str):
        project = self.managed_project(project_id)
        rule = protection.create_rule(project=project, **self.rule_fields(create=True))
        return Response(rule_entity(rule), status=201)


class ProtectionRuleView(_RulesView):
    def find_rule(self, project: Project, raw_id: str) -> ContainerRepositoryProtectionRule:
        rule_id = self.int_id(raw_id)
        rule = (
            ContainerRepositoryProtectionRule.objects.filter(project=project, pk=rule_id).first() if rule_id else None
        )
        if rule is None:
            raise not_found()
        return rule

    def patch(self, request, project_id: str, rule_id: str):
        project = self.managed_project(project_id)
        rule = self.find_rule(project, rule_id)
        rule = protection.update_rule(rule, **self.rule_fields(create=False))
        return Response(rule_entity(rule))

    def delete(self, request, project_id: str, rule_id: str):
        project = self.managed_project(project_id)
        protection.delete_rule(self.find_rule(project, rule_id))
        return Response(status=204)
