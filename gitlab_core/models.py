"""Users, personal access tokens and the application-settings singleton."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from gitlab_core import tokens

PAT_SCOPES = (
    "api",
    "read_api",
    "read_user",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "sudo",
    "admin_mode",
    "self_rotate",
    "create_runner",
    "manage_runner",
    "k8s_proxy",
    "ai_features",
    "read_service_ping",
    "read_virtual_registry",
    "write_virtual_registry",
)


class User(AbstractUser):
    """A GitLab user. ``is_superuser`` is GitLab's instance-admin flag."""

    class State(models.TextChoices):
        ACTIVE = "active"
        BLOCKED = "blocked"
        DEACTIVATED = "deactivated"

    # AbstractUser's first/last names are unused; GitLab has one display name.
    name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(max_length=255, unique=True, null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    two_factor_enabled = models.BooleanField(default=False)
    can_create_group = models.BooleanField(default=True)
    projects_limit = models.PositiveIntegerField(default=100000)
    external = models.BooleanField(default=False)
    note = models.TextField(blank=True, null=True)

    objects = UserManager()

    class Meta:
        db_table = "users"
        constraints = [
            models.UniqueConstraint(models.functions.Lower("username"), name="users_username_ci_unique"),
        ]

    def check_password(self, raw_password: str) -> bool:
        """Django's check; when it stored the password again under a stronger hash, tell
        the apps bound to the old hash that it is still the same password."""
        old_hash = self.password
        matched = super().check_password(raw_password)
        if matched and self.password != old_hash:
            from gitlab_core.signals import password_rehashed

            password_rehashed.send(sender=User, user=self, old_hash=old_hash)
        return matched

    def save(self, *args, **kwargs):
        # Django's is_active gates admin sign-in; it follows GitLab's state.
        self.is_active = self.state == self.State.ACTIVE
        if self.is_superuser:
            self.is_staff = True
        if not self.name:
            self.name = self.username
        super().save(*args, **kwargs)

    @property
    def is_admin(self) -> bool:
        return self.is_superuser

    @property
    def can_log_in(self) -> bool:
        return self.state == self.State.ACTIVE


class PersonalAccessTokenQuerySet(models.QuerySet):
    def active(self) -> PersonalAccessTokenQuerySet:
        today = timezone.now().date()
        return self.filter(revoked=False).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=today))


class PersonalAccessToken(models.Model):
    """Only the SHA-256 digest of the secret is stored; the secret is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="personal_access_tokens")
    name = models.CharField(max_length=255)
    description = models.TextField(null=True, blank=True)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Rotation links the new token to the one it replaced (a "token family").
    previous = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next")

    objects = PersonalAccessTokenQuerySet.as_manager()

    class Meta:
        db_table = "personal_access_tokens"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.user.username})"

    def set_secret(self) -> str:
        secret = tokens.generate_secret(tokens.PAT_PREFIX)
        self.token_digest = tokens.digest(secret)
        return secret

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now().date()

    @property
    def active(self) -> bool:
        return not self.revoked and not self.expired


# Refresh tokens of the realm live at most ten years (longer overflows dates).
MAX_REFRESH_TOKEN_DAYS = 3650


class ApplicationSettings(models.Model):
    """The instance-wide settings singleton (always row id 1)."""

    # The instance's default cleanup policy of new projects: setting -> policy attribute.
    DEFAULT_POLICY_FIELDS = {
        "container_expiration_policy_enabled_by_default": "enabled",
        "container_expiration_policy_default_cadence": "cadence",
        "container_expiration_policy_default_keep_n": "keep_n",
        "container_expiration_policy_default_older_than": "older_than",
        "container_expiration_policy_default_name_regex": "name_regex",
        "container_expiration_policy_default_name_regex_keep": "name_regex_keep",
    }

    container_registry_token_expire_delay = models.IntegerField(
        default=5,
        validators=[MinValueValidator(1, "must be greater than 0")],
        verbose_name="Authorization token duration (minutes)",
        help_text="Lifetime of the tokens that /jwt/auth issues for the container registry.",
    )
    container_expiration_policies_enable_historic_entries = models.BooleanField(
        default=False,
        verbose_name="Enable cleanup policies for projects created earlier",
        help_text="Legacy GitLab flag; kept for API compatibility.",
    )
    container_registry_cleanup_tags_service_max_list_size = models.IntegerField(
        default=200,
        validators=[MinValueValidator(0, "must be greater than or equal to 0")],
        verbose_name="Cleanup policy maximum number of tags to be deleted",
        help_text="Tags a single cleanup run considers per repository; 0 means no limit.",
    )
    container_registry_delete_tags_service_timeout = models.IntegerField(
        default=250,
        validators=[MinValueValidator(0, "must be greater than or equal to 0")],
        verbose_name="Container Registry delete tags service execution timeout (seconds)",
        help_text="Time budget for deleting tags in one run; 0 means no limit.",
    )
    container_registry_expiration_policies_caching = models.BooleanField(
        default=True,
        verbose_name="Enable container expiration caching",
        help_text="Cache tag creation times between cleanup runs.",
    )
    container_registry_expiration_policies_worker_capacity = models.IntegerField(
        default=4,
        validators=[MinValueValidator(0, "must be greater than or equal to 0")],
        verbose_name="Cleanup policy maximum workers running concurrently",
        help_text="0 means cleanup policies never run.",
    )
    container_expiration_policy_enabled_by_default = models.BooleanField(
        default=False,
        verbose_name="Enable cleanup policies for new projects",
        help_text="Whether the cleanup policy of a newly created project starts enabled.",
    )
    # The rest of a new project's cleanup policy (its ``enabled`` is the setting above),
    # unless a group above the project has its own default (the nearest one wins). The
    # container registry app checks the values (``cleanup_policy_defaults_submitted``).
    container_expiration_policy_default_cadence = models.CharField(
        max_length=12,
        default="1d",
        verbose_name="Default cleanup policy: run cleanup",
        help_text="1d, 7d, 14d, 1month or 3month.",
    )
    container_expiration_policy_default_keep_n = models.IntegerField(
        null=True,
        blank=True,
        default=10,
        verbose_name="Default cleanup policy: keep the most recent",
        help_text="1, 5, 10, 25, 50 or 100 tags per image name; empty keeps none by count.",
    )
    container_expiration_policy_default_older_than = models.CharField(
        max_length=12,
        null=True,
        blank=True,
        default="90d",
        verbose_name="Default cleanup policy: remove tags older than",
        help_text="7d, 14d, 30d, 60d or 90d; empty removes tags of any age.",
    )
    container_expiration_policy_default_name_regex = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        default=".*",
        verbose_name="Default cleanup policy: remove tags matching",
        help_text="RE2 pattern that the whole tag name must match.",
    )
    container_expiration_policy_default_name_regex_keep = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        verbose_name="Default cleanup policy: keep tags matching",
        help_text="RE2 pattern; matching tags are never removed.",
    )
    container_registry_cleanup_brake_enabled = models.BooleanField(
        default=True,
        verbose_name="Hold mass deletions of cleanup policies",
        help_text=(
            "The first scheduled run of a changed policy that would delete more tags than the limits below "
            "deletes nothing and holds the repository until a Maintainer or an administrator releases it."
        ),
    )
    container_registry_cleanup_brake_tags = models.IntegerField(
        default=1000,
        validators=[MinValueValidator(0, "must be greater than or equal to 0")],
        verbose_name="Hold runs deleting more tags than",
        help_text="Tags of one repository; 0 means no limit by count.",
    )
    container_registry_cleanup_brake_percent = models.IntegerField(
        default=50,
        validators=[
            MinValueValidator(0, "must be greater than or equal to 0"),
            MaxValueValidator(100, "must be less than or equal to 100"),
        ],
        verbose_name="Hold runs deleting more than this percentage of tags",
        help_text="Percent of one repository's tags; 0 or 100 means no limit by share.",
    )
    container_registry_refresh_token_days = models.IntegerField(
        default=30,
        validators=[
            MinValueValidator(0, "must be greater than or equal to 0"),
            MaxValueValidator(MAX_REFRESH_TOKEN_DAYS, f"must be less than or equal to {MAX_REFRESH_TOKEN_DAYS}"),
        ],
        verbose_name="Registry refresh token lifetime (days)",
        help_text="How long a refresh token that /jwt/auth issues (offline_token) stays valid; 0 issues none.",
    )
    allow_local_requests_from_web_hooks_and_services = models.BooleanField(
        default=False,
        verbose_name="Allow requests to the local network from webhooks",
        help_text="Hooks may post to loopback and private addresses (GitLab's setting of the same name).",
    )
    container_registry_vendor = models.CharField(max_length=255, blank=True, default="", editable=False)
    container_registry_version = models.CharField(max_length=255, blank=True, default="", editable=False)
    container_registry_features = models.JSONField(default=list, blank=True, editable=False)
    default_projects_limit = models.IntegerField(default=100000, validators=[MinValueValidator(0)])
    signup_enabled = models.BooleanField(default=False)
    default_project_visibility = models.CharField(
        max_length=16, default="private", choices=[(v, v) for v in ("private", "internal", "public")]
    )
    default_group_visibility = models.CharField(
        max_length=16, default="private", choices=[(v, v) for v in ("private", "internal", "public")]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "application_settings"
        verbose_name = "application settings"
        verbose_name_plural = "application settings"

    def __str__(self) -> str:
        return "Application settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> ApplicationSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class LoginFailures(models.Model):
    """Failed sign-ins of one (client address, login) pair within a window, and its ban.

    One row per pair that failed recently: the realm's failed-login ban (``realm``) and
    the admin sign-in lockout (``admin``) both count here, with the rule in
    ``gitlab_core.login_failures``. A table rather than the cache: its updates are atomic
    on every database, and bans can be listed and lifted.
    """

    class Kind(models.TextChoices):
        REALM = "realm", "registry login (/jwt/auth)"
        ADMIN = "admin", "admin sign-in"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    address = models.CharField(max_length=64)
    # The canonical login: a user's username, otherwise the login as typed, case-folded.
    login = models.CharField(max_length=255)
    failures = models.PositiveIntegerField(default=0)
    window_ends_at = models.DateTimeField()
    banned_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "login_failures"
        verbose_name = "login ban"
        verbose_name_plural = "login bans"
        constraints = [models.UniqueConstraint(fields=["kind", "address", "login"], name="login_failures_pair")]
        indexes = [models.Index(fields=["window_ends_at"], name="login_failures_window")]

    def __str__(self) -> str:
        return f"{self.login} from {self.address}"


class AuditEvent(models.Model):
    """One change of access or data that an administrator may want to trace (GitLab's
    audit event). Written by ``gitlab_core.audit.record`` only, never changed afterwards.

    The entity is the scope the event is listed under (a ``User``, ``Project``, ``Group``
    or the instance), referenced by type name and id so that rows outlive what they name
    and this app needs no other app's models. ``author_id`` is not a foreign key for the
    same reason: -1 is the system (a task, a command, an unauthenticated client).
    ``details`` holds GitLab's keys (``author_name``, ``target_*``, ``custom_message`` or
    ``change``/``from``/``to``, ``ip_address``, ``entity_path``).
    """

    author_id = models.BigIntegerField()
    author_name = models.CharField(max_length=255)
    entity_type = models.CharField(max_length=64)
    entity_id = models.BigIntegerField()
    entity_path = models.CharField(max_length=2048, blank=True)
    event_name = models.CharField(max_length=128)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.BigIntegerField(null=True, blank=True)
    target_details = models.CharField(max_length=2048, blank=True)
    ip_address = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "audit_events"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at", "id"], name="audit_events_created"),
            models.Index(fields=["entity_type", "entity_id", "created_at", "id"], name="audit_events_entity"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} on {self.entity_type} {self.entity_path or self.entity_id}"
