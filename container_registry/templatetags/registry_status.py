"""``{% registry_status_panel %}``: the registry's vendor, version and last event, for
the admin's front page (the same ``registry_status`` as ``/-/readiness``)."""

from __future__ import annotations

from django import template

from container_registry.registry_info import registry_status

register = template.Library()


@register.inclusion_tag("admin/container_registry/registry_status.html")
def registry_status_panel() -> dict:
    return {"registry": registry_status()}
