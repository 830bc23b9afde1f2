"""Seed the benchmark database: a developer of ``bench/group/app`` with a PAT.
Run with ``manage.py shell < seed.py``; prints ``<pat>`` on the last line."""

from projects.models import AccessLevel, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user

owner = make_user("benchowner")
group = make_group("bench", owner=owner)
sub = make_group("group", parent=group, owner=owner)
project = make_project(sub, "app", creator=owner)
dev = make_user("benchdev", password="bench-password-123")
ProjectMember.objects.create(project=project, user=dev, access_level=AccessLevel.DEVELOPER)
print(make_token(dev, scopes=["api"]))
