"""The admin sign-in lockout, and the page that lists and lifts login bans.

Sign-in failures are counted per (client address, canonical username) by the rule of
``gitlab_core.login_failures``, with GitLab's numbers by default: after
``ADMIN_LOCKOUT_MAX_FAILURES`` (10) failures within ``ADMIN_LOCKOUT_FIND_TIME`` seconds
the sign-in from that address is refused for ``ADMIN_LOCKOUT_TIME`` seconds (600), the
right password included, with a message saying so. Other addresses can still sign in
as that user. Realm bans and admin lockouts are listed on one page ("Login bans") with a
"Lift" action, and by ``manage.py realm_bans --kind admin``.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone

from gitlab_core import login_failures
from gitlab_core.client_address import client_address
from gitlab_core.models import LoginFailures

LOCKED_MESSAGE = "Too many failed sign-in attempts from this address. Try again in %(minutes)d minute(s)."


def admin_policy() -> login_failures.Policy:
    return login_failures.Policy(
        kind=LoginFailures.Kind.ADMIN,
        max_failures=settings.ADMIN_LOCKOUT_MAX_FAILURES,
        find_time=settings.ADMIN_LOCKOUT_FIND_TIME,
        ban_time=settings.ADMIN_LOCKOUT_TIME,
    )


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, refusing a locked (address, user) before the password
    is checked, and counting wrong passwords."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if not settings.ADMIN_LOCKOUT_ENABLED or not username or not self.cleaned_data.get("password"):
            return super().clean()
        policy, address = admin_policy(), client_address(self.request.META if self.request else {})
        state = login_failures.check(policy, address=address, login=username)
        if state.banned:
            minutes = max(1, math.ceil((state.banned_until - timezone.now()).total_seconds() / 60))
            raise ValidationError(LOCKED_MESSAGE, code="locked", params={"minutes": minutes})
        try:
            cleaned = super().clean()
        except ValidationError:
            if self.user_cache is None:  # wrong username or password, not an inactive account
                if login_failures.record_failure(policy, address=address, login=username):
                    minutes = max(1, math.ceil(policy.ban_time / 60))
                    raise ValidationError(LOCKED_MESSAGE, code="locked", params={"minutes": minutes}) from None
            raise
        if state.failures:
            login_failures.record_success(policy, address=address, login=username)
        return cleaned


@admin.register(LoginFailures)
class LoginBanAdmin(admin.ModelAdmin):
    """Bans in force and pairs still counting; lifting deletes the pair's row."""

    list_display = ("kind", "address", "login", "failures", "banned_until", "window_ends_at")
    list_filter = ("kind",)
    search_fields = ("address", "login")
    ordering = ("-banned_until", "-window_ends_at")
    actions = ["lift"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Lifting is the "Lift" action, which logs what it lifted.
        return False

    @admin.action(description="Lift the selected bans")
    def lift(self, request, queryset):
        lifted = login_failures.lift(queryset, by=f"admin:{request.user.get_username()}")
        messages.success(request, f"Lifted {len(lifted)} ban(s); their failure counts are cleared.")
