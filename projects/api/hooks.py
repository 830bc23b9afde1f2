"""``/projects/:id/hooks`` and ``/groups/:id/hooks`` in GitLab's shape: list, get,
create, edit, delete, and ``POST .../hooks/:hook_id/test/:trigger``.

Project hooks need a Maintainer (GitLab's ``admin_project``), group hooks an Owner. Our
trigger is ``container_registry_events`` (``projects.webhooks``); GitLab's other trigger
flags are accepted and stored so that scripts written for GitLab keep working, but this
service has no such events. The token is write-only.
"""

from __future__ import annotations

from django.core.cache import cache
from rest_framework.response import Response

from gitlab_core.api.format import iso
from gitlab_core.api.views import ApiView
from gitlab_core.errors import ServiceError, forbidden, invalid_params, not_found
from projects import permissions, selectors, webhooks
from projects.models import WebHook

TEST_INTERVAL_SECONDS = 5
BOOLEAN_FIELDS = ("container_registry_events", "push_events", "tag_push_events", "enable_ssl_verification")
TEXT_FIELDS = {"name": 255, "description": 2048, "token": 255}


def hook_entity(hook: WebHook) -> dict:
    entity = {
        "id": hook.pk,
        "url": hook.url,
        "name": hook.name,
        "description": hook.description,
        "created_at": iso(hook.created_at),
        **{name: getattr(hook, name) for name in BOOLEAN_FIELDS},
        "alert_status": webhooks.alert_status(hook),
        "disabled_until": iso(hook.disabled_until),
        "url_variables": [],
    }
    if hook.project_id is not None:
        entity["project_id"] = hook.project_id
    else:
        entity["group_id"] = hook.group_id
    return entity


class _HooksView(ApiView):
    source = "projects"

    def parent(self, raw_id: str) -> dict:
        user = self.require_user()
        if self.source == "projects":
            project = selectors.find_project(user, self.decode_id(raw_id))
            if not permissions.can(user, permissions.UPDATE_PROJECT, project):
                raise forbidden()
            return {"project": project}
        group = selectors.find_group(user, self.decode_id(raw_id))
        if not permissions.can(user, permissions.ADMIN_GROUP, group):
            raise forbidden()
        return {"group": group}

    def find_hook(self, parent: dict, raw_id: str) -> WebHook:
        hook_id = self.int_id(raw_id)
        hook = WebHook.objects.filter(**parent, pk=hook_id).first() if hook_id else None
        if hook is None:
            raise not_found("Hook")
        return hook

    def apply_params(self, hook: WebHook, *, create: bool) -> bool:
        """Set the request's fields on ``hook``; True when the URL changed."""
        params = self.params()
        url = params.str("url", required=create, max_length=2048, allow_blank=False)
        values = {name: params.bool(name) for name in BOOLEAN_FIELDS}
        texts = {name: params.str(name, max_length=limit, nullable=True) for name, limit in TEXT_FIELDS.items()}
        params.check()
        if texts["token"] is not None and "\n" in texts["token"]:
            raise invalid_params("token is invalid")
        url_changed = url is not None and url != hook.url
        if url is not None:
            hook.url = url
        for name, value in values.items():
            if value is not None:
                setattr(hook, name, value)
        for name, value in texts.items():
            if value is not None:
                setattr(hook, name, value)
        return url_changed


class HooksView(_HooksView):
    def get(self, request, parent_id: str):
        parent = self.parent(parent_id)
        return self.paginated(WebHook.objects.filter(**parent).order_by("id"), hook_entity)

    def post(self, request, parent_id: str):
        hook = WebHook(**self.parent(parent_id))
        url_changed = self.apply_params(hook, create=True)
        webhooks.save_hook(hook, url_changed=url_changed)
        return Response(hook_entity(hook), status=201)


class HookView(_HooksView):
    def get(self, request, parent_id: str, hook_id: str):
        return Response(hook_entity(self.find_hook(self.parent(parent_id), hook_id)))

    def put(self, request, parent_id: str, hook_id: str):
        hook = self.find_hook(self.parent(parent_id), hook_id)
        url_changed = self.apply_params(hook, create=False)
        webhooks.save_hook(hook, url_changed=url_changed)
        return Response(hook_entity(hook))

    def delete(self, request, parent_id: str, hook_id: str):
        self.find_hook(self.parent(parent_id), hook_id).delete()
        return Response(status=204)


class HookTestView(_HooksView):
    def post(self, request, parent_id: str, hook_id: str, trigger: str):
        hook = self.find_hook(self.parent(parent_id), hook_id)
        if trigger != webhooks.TRIGGER:
            raise invalid_params(f"trigger does not have a valid value; this service tests {webhooks.TRIGGER}")
        # A test posts at once, from this request: one per hook at a time, as GitLab
        # rate-limits its test endpoint.
        if not cache.add(f"webhooks:test:{hook.pk}", 1, timeout=TEST_INTERVAL_SECONDS):
            raise ServiceError(429, {"message": "This endpoint has been requested too many times. Try again later."})
        delivery = webhooks.test_delivery(hook, user=self.require_user())
        if delivery.outcome != "delivered":
            raise ServiceError(422, {"message": f"Hook execution failed: {delivery.status or delivery.outcome}"})
        return Response({"message": "201 Created"}, status=201)
