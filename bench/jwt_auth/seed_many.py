"""Seed the distinct-requests benchmark database from a plan (``compare.py`` writes it).

Run with ``BENCH_PLAN=plan.json manage.py shell < seed_many.py``; prints one JSON line
last: ``{"pats": {username: secret}, "deploy_tokens": [[username, secret, project], ...]}``.

The plan: ``groups`` ([path, parent path or null, visibility]), ``projects`` ([full
path, visibility]), ``users`` ([username, PAT scopes]), ``group_members`` /
``project_members`` ([username, path, access level name]) and ``deploy_tokens``
([project path, scopes]). Users other than ``benchdev`` get a cheap password hash
(their passwords are never checked): Django's PBKDF2 at 1,000,000 iterations would
cost a quarter of a second per user here.
"""

import json
import os

from django.test import override_settings

from projects.models import AccessLevel, DeployToken, GroupMember, Namespace, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user

plan = json.loads(open(os.environ["BENCH_PLAN"]).read())
owner = make_user("benchowner")
namespaces: dict[str, Namespace] = {}
for path, parent, visibility in plan["groups"]:
    namespaces[path] = make_group(
        path.rsplit("/", 1)[-1], parent=namespaces[parent] if parent else None, owner=owner, visibility=visibility
    )
projects = {}
for full_path, visibility in plan["projects"]:
    group, _, name = full_path.rpartition("/")
    projects[full_path] = make_project(namespaces[group], name, creator=owner, visibility=visibility)
users = {}
pats = {}
for username, scopes in plan["users"]:
    if username == "benchdev":
        users[username] = make_user(username, password="bench-password-123")
    else:
        with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
            users[username] = make_user(username)
    pats[username] = make_token(users[username], scopes=scopes)
for username, path, level in plan["group_members"]:
    GroupMember.objects.create(group=namespaces[path], user=users[username], access_level=AccessLevel[level])
for username, path, level in plan["project_members"]:
    ProjectMember.objects.create(project=projects[path], user=users[username], access_level=AccessLevel[level])
deploy_tokens = []
for index, (path, scopes) in enumerate(plan["deploy_tokens"]):
    token = DeployToken(project=projects[path], name=f"bench-{index}", scopes=scopes)
    secret = token.set_secret()
    token.save()
    deploy_tokens.append([token.username, secret, path])
print(json.dumps({"pats": pats, "deploy_tokens": deploy_tokens}))
