"""Admin page of the groups' default cleanup policies (the instance's default is on the
application settings page): the form is checked and saved by
``container_registry.policy_defaults``, as ``PUT /groups/:id`` does."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from container_registry import policy_defaults
from container_registry.models import (
    KEEP_N_CHOICES,
    OLDER_THAN_CHOICES,
    Cadence,
    ContainerExpirationPolicy,
    GroupCleanupPolicyDefault,
)
from gitlab_core.errors import ServiceError
from projects.models import Namespace


class GroupDefaultForm(forms.ModelForm):
    own_default = forms.BooleanField(
        required=False,
        label="Has its own default",
        help_text="Unchecked: new projects take the default of the nearest group above, or the instance's.",
    )
    enabled = forms.BooleanField(required=False)
    cadence = forms.ChoiceField(choices=Cadence.choices)
    keep_n = forms.TypedChoiceField(
        choices=[("", "-")] + [(n, n) for n in KEEP_N_CHOICES], coerce=int, empty_value=None, required=False
    )
    older_than = forms.TypedChoiceField(
        choices=[("", "-")] + [(v, v) for v in OLDER_THAN_CHOICES], empty_value=None, required=False
    )
    name_regex = forms.CharField(required=False, max_length=255)
    name_regex_keep = forms.CharField(required=False, max_length=255)

    class Meta:
        model = GroupCleanupPolicyDefault
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        own = self.instance.container_expiration_policy_default
        values = policy_defaults.default_for(self.instance) if self.instance.pk else policy_defaults.instance_default()
        self.initial.update({"own_default": own is not None, **values})

    def clean(self):
        data = super().clean()
        if not data.get("own_default"):
            self.attributes = None
            return data
        attributes = {key: data.get(key) or None for key in policy_defaults.ATTRIBUTES}
        attributes["enabled"] = bool(data.get("enabled"))
        try:
            policy_defaults.checked(attributes, {key: getattr(ContainerExpirationPolicy(), key) for key in attributes})
        except ServiceError as exc:
            problems = exc.body.get("message", exc.body.get("error"))
            if not isinstance(problems, dict):
                raise forms.ValidationError(str(problems)) from None
            for key, texts in problems.items():
                self.add_error(key.rpartition(".")[2] if key.rpartition(".")[2] in self.fields else None, texts)
        self.attributes = attributes
        return data


@admin.register(GroupCleanupPolicyDefault)
class GroupCleanupPolicyDefaultAdmin(admin.ModelAdmin):
    form = GroupDefaultForm
    list_display = ("full_path", "own_default")
    search_fields = ("full_path",)
    readonly_fields = ("full_path",)
    fields = ("full_path", "own_default", "enabled", "cadence", "keep_n", "older_than", "name_regex", "name_regex_keep")

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).filter(kind=Namespace.Kind.GROUP)

    @admin.display(description="own default", boolean=True)
    def own_default(self, obj: GroupCleanupPolicyDefault) -> bool:
        return obj.container_expiration_policy_default is not None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: GroupCleanupPolicyDefault, form, change: bool) -> None:
        # The same service as PUT /groups/:id (complete default, audited).
        policy_defaults.update_group_default(group=obj, attributes=form.attributes)
