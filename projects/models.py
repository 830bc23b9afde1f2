"""Namespaces (users' personal namespaces and nested groups), projects, memberships,
deploy tokens and CI jobs.

Full paths are stored denormalised (``full_path`` as typed, ``full_path_lower`` for
case-insensitive lookups) because the token realm resolves image paths to projects on
every request and must do it with one indexed query.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from gitlab_core import tokens
from gitlab_core.audit import Entity


class Visibility(models.IntegerChoices):
    PRIVATE = 0, "private"
    INTERNAL = 10, "internal"
    PUBLIC = 20, "public"

    @classmethod
    def from_name(cls, name: str) -> Visibility:
        return {"private": cls.PRIVATE, "internal": cls.INTERNAL, "public": cls.PUBLIC}[name]

    @property
    def name_str(self) -> str:
        return self.label


class AccessLevel(models.IntegerChoices):
    GUEST = 10, "Guest"
    REPORTER = 20, "Reporter"
    DEVELOPER = 30, "Developer"
    MAINTAINER = 40, "Maintainer"
    OWNER = 50, "Owner"


class RegistryAccessLevel(models.TextChoices):
    ENABLED = "enabled"
    PRIVATE = "private"
    DISABLED = "disabled"


class Namespace(models.Model):
    """A personal namespace (kind ``user``) or a group (kind ``group``, may be nested)."""

    class Kind(models.TextChoices):
        USER = "user"
        GROUP = "group"

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.GROUP)
    name = models.CharField(max_length=255)
    path = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_namespace",
    )
    visibility = models.IntegerField(choices=Visibility.choices, default=Visibility.PRIVATE)
    full_path = models.CharField(max_length=2048, editable=False)
    full_path_lower = models.CharField(max_length=2048, unique=True, editable=False)
    full_name = models.CharField(max_length=4096, editable=False, default="")
    request_access_enabled = models.BooleanField(default=True)
    # A group's default cleanup policy for projects created below it (the nearest group
    # with one wins over the instance's): the six policy attributes, complete, as the
    # container registry app checked and stored them; None takes the next one up.
    container_expiration_policy_default = models.JSONField(null=True, blank=True, default=None)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "namespaces"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.full_path

    def save(self, *args, **kwargs):
        self.refresh_full_path()
        super().save(*args, **kwargs)

    def refresh_full_path(self) -> None:
        if self.parent_id:
            parent = self.parent
            self.full_path = f"{parent.full_path}/{self.path}"
            self.full_name = f"{parent.full_name} / {self.name}"
        else:
            self.full_path = self.path
            self.full_name = self.name
        self.full_path_lower = self.full_path.lower()

    @property
    def is_group(self) -> bool:
        return self.kind == self.Kind.GROUP

    @property
    def audit_entity(self) -> Entity:
        """Audit events are listed under the group, or under the owner of a personal namespace."""
        if self.is_group:
            return Entity("Group", self.pk, self.full_path)
        return Entity("User", self.owner_id, self.full_path)

    @property
    def visibility_name(self) -> str:
        return Visibility(self.visibility).label

    def ancestors(self) -> list[Namespace]:
        """This namespace's ancestors, nearest first (not including itself)."""
        chain: list[Namespace] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain

    def self_and_ancestor_ids(self) -> list[int]:
        return [self.pk, *(a.pk for a in self.ancestors())]

    def root(self) -> Namespace:
        ancestors = self.ancestors()
        return ancestors[-1] if ancestors else self

    def self_and_descendant_ids(self) -> list[int]:
        ids = [self.pk]
        frontier = [self.pk]
        while frontier:
            frontier = list(Namespace.objects.filter(parent_id__any=frontier).values_list("pk", flat=True))
            ids.extend(frontier)
        return ids


class GroupManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(kind=Namespace.Kind.GROUP)


class Group(Namespace):
    objects = GroupManager()

    class Meta:
        proxy = True

    def save(self, *args, **kwargs):
        self.kind = Namespace.Kind.GROUP
        super().save(*args, **kwargs)


class Project(models.Model):
    namespace = models.ForeignKey(Namespace, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=255)
    path = models.CharField(max_length=255)
    description = models.TextField(null=True, blank=True)
    visibility = models.IntegerField(choices=Visibility.choices, default=Visibility.PRIVATE)
    container_registry_access_level = models.CharField(
        max_length=8, choices=RegistryAccessLevel.choices, default=RegistryAccessLevel.ENABLED
    )
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_projects"
    )
    full_path = models.CharField(max_length=2048, editable=False)
    full_path_lower = models.CharField(max_length=2048, unique=True, editable=False)
    # Set by DELETE /projects/:id: the project vanishes from the API at once, and the row
    # goes once its container repositories are deleted from the registry.
    pending_delete = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "projects"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.full_path

    def save(self, *args, **kwargs):
        self.refresh_full_path()
        super().save(*args, **kwargs)

    def refresh_full_path(self) -> None:
        self.full_path = f"{self.namespace.full_path}/{self.path}"
        self.full_path_lower = self.full_path.lower()

    @property
    def visibility_name(self) -> str:
        return Visibility(self.visibility).label

    @property
    def audit_entity(self) -> Entity:
        return Entity("Project", self.pk, self.full_path)

    @property
    def name_with_namespace(self) -> str:
        return f"{self.namespace.full_name} / {self.name}"

    @property
    def registry_enabled(self) -> bool:
        return self.container_registry_access_level != RegistryAccessLevel.DISABLED

    @property
    def container_registry_image_prefix(self) -> str:
        return f"{settings.REGISTRY_HOST_PORT}/{self.full_path_lower}"

    def root_namespace_id(self) -> int:
        return self.namespace.root().pk


class MembershipQuerySet(models.QuerySet):
    def active(self) -> MembershipQuerySet:
        """Memberships in force: no expiry date, or one after today. The hand-written
        statements of ``projects.permissions`` use the same rule as ``ACTIVE_SQL``."""
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now().date()))


class MemberBase(models.Model):
    # ``MembershipQuerySet.active`` in SQL, for a membership table aliased ``{m}``; its
    # parameter is today's date. A test checks that both agree.
    ACTIVE_SQL = "({m}.expires_at IS NULL OR {m}.expires_at > %s)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    access_level = models.IntegerField(choices=AccessLevel.choices)
    expires_at = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = MembershipQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.user_id} ({AccessLevel(self.access_level).label})"


class GroupMember(MemberBase):
    group = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="members")

    class Meta:
        db_table = "group_members"
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="group_member_unique")]
        indexes = [models.Index(fields=["user", "group"])]


class ProjectMember(MemberBase):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")

    class Meta:
        db_table = "project_members"
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="project_member_unique")]
        indexes = [models.Index(fields=["user", "project"])]


DEPLOY_TOKEN_SCOPES = (
    "read_repository",
    "read_registry",
    "write_registry",
    "read_package_registry",
    "write_package_registry",
)


class DeployTokenQuerySet(models.QuerySet):
    def active(self) -> DeployTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked=False).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class DeployToken(models.Model):
    """A registry credential of a project, or of a group: a group token reaches every
    project of the group and its subgroups (GitLab's ``deploy_token_type``)."""

    class Type(models.TextChoices):
        PROJECT = "project"
        GROUP = "group"

    deploy_token_type = models.CharField(max_length=8, choices=Type.choices, default=Type.PROJECT)
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="deploy_tokens")
    group = models.ForeignKey(
        Namespace,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deploy_tokens",
        limit_choices_to={"kind": Namespace.Kind.GROUP},
    )
    name = models.CharField(max_length=255)
    # Empty until saved: the default is gitlab+deploy-token-<id>.
    username = models.CharField(max_length=255, blank=True)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = DeployTokenQuerySet.as_manager()

    class Meta:
        db_table = "deploy_tokens"
        ordering = ["id"]
        constraints = [
            # A token belongs to exactly the owner its type names.
            models.CheckConstraint(
                condition=(
                    models.Q(deploy_token_type="project", project__isnull=False, group__isnull=True)
                    | models.Q(deploy_token_type="group", group__isnull=False, project__isnull=True)
                ),
                name="deploy_token_owner_matches_type",
            )
        ]

    @property
    def owner(self) -> Project | Namespace:
        return self.group if self.deploy_token_type == self.Type.GROUP else self.project

    def __str__(self) -> str:
        return f"{self.name} ({self.owner.full_path})"

    def set_secret(self) -> str:
        secret = tokens.generate_secret(tokens.DEPLOY_TOKEN_PREFIX)
        self.token_digest = tokens.digest(secret)
        return secret

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        if not self.username:
            self.username = f"gitlab+deploy-token-{self.pk}"
            super().save(update_fields=["username"])

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def active(self) -> bool:
        return not self.revoked and not self.expired


class CiJob(models.Model):
    """A CI job registered by an external CI; its token authenticates to the registry
    while the job is running (login ``gitlab-ci-token``)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCESS = "success"
        FAILED = "failed"
        CANCELED = "canceled"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ci_jobs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "ci_jobs"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.project.full_path}, {self.status})"

    def set_secret(self) -> str:
        secret = tokens.generate_secret(tokens.CI_JOB_TOKEN_PREFIX)
        self.token_digest = tokens.digest(secret)
        return secret


class ProtectionLevel(models.IntegerChoices):
    """The minimum role a container repository protection rule asks for (GitLab's values;
    ``admin`` is an instance administrator)."""

    MAINTAINER = 40, "maintainer"
    OWNER = 50, "owner"
    ADMIN = 60, "admin"


class ContainerRepositoryProtectionRule(models.Model):
    """Who may push to and delete from the container repositories whose full path matches
    ``repository_path_pattern`` (``*`` matches any run of characters). A level left empty
    does not protect that action. The rule is ``projects.protection``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="container_protection_rules")
    repository_path_pattern = models.CharField(max_length=255)
    minimum_access_level_for_push = models.SmallIntegerField(choices=ProtectionLevel.choices, null=True, blank=True)
    minimum_access_level_for_delete = models.SmallIntegerField(choices=ProtectionLevel.choices, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "container_registry_protection_rules"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "repository_path_pattern"], name="protection_rule_unique_pattern"
            )
        ]

    def __str__(self) -> str:
        return self.repository_path_pattern


class WebHook(models.Model):
    """A project or group hook (GitLab's hook API) that posts container registry events:
    tag pushes and deletions and repository deletions (``container_registry_events``,
    our trigger; GitLab's other triggers are accepted and stored, never fired here).
    Failing hooks are disabled by ``projects.webhooks`` as GitLab does."""

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="hooks")
    group = models.ForeignKey(Namespace, null=True, blank=True, on_delete=models.CASCADE, related_name="hooks")
    url = models.CharField(max_length=2048)
    name = models.CharField(max_length=255, blank=True, default="")
    description = models.TextField(blank=True, default="")
    # Sent as X-Gitlab-Token; never shown by the API or the admin after it is set.
    token = models.CharField(max_length=255, blank=True, default="")
    container_registry_events = models.BooleanField(default=True)
    push_events = models.BooleanField(default=True)
    tag_push_events = models.BooleanField(default=False)
    enable_ssl_verification = models.BooleanField(default=True)
    # GitLab's auto-disabling state: failures in a row, backoffs taken, and until when the
    # hook rests (None with failures past the limit: disabled until someone saves it).
    recent_failures = models.SmallIntegerField(default=0)
    backoff_count = models.SmallIntegerField(default=0)
    disabled_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "web_hooks"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(project__isnull=False, group__isnull=True)
                | models.Q(project__isnull=True, group__isnull=False),
                name="web_hook_has_one_parent",
            )
        ]

    def __str__(self) -> str:
        return self.url


class WebHookLog(models.Model):
    """One delivery attempt of a hook: what the admin shows as recent deliveries."""

    hook = models.ForeignKey(WebHook, on_delete=models.CASCADE, related_name="logs")
    trigger = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=64)
    attempt = models.SmallIntegerField(default=1)
    # The HTTP status, or "internal error" when no answer came (GitLab's word).
    response_status = models.CharField(max_length=32)
    response_body = models.TextField(blank=True, default="")
    execution_duration = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "web_hook_logs"
        ordering = ["-id"]
        indexes = [models.Index(fields=["hook", "-id"], name="web_hook_logs_recent")]

    def __str__(self) -> str:
        return f"{self.trigger} -> {self.response_status}"
