"""CI job tokens on the REST API (``JOB-TOKEN`` header, ``job_token`` parameter): the
registry endpoints of the job's own project only; another project is GitLab's 403."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from container_registry.api import JOB_TOKEN_OTHER_PROJECT
from container_registry.models import ContainerRepository
from projects.models import CiJob
from tests_support.factories import make_project

pytestmark = pytest.mark.django_db


def _job(project, user, status=CiJob.Status.RUNNING) -> str:
    job = CiJob(project=project, user=user, status=status)
    secret = job.set_secret()
    job.save()
    return secret


@pytest.fixture
def own(world):
    repository = ContainerRepository.objects.create(project=world["project"], name="app")
    return {"secret": _job(world["project"], world["users"]["developer"]), "repository": repository}


def test_a_job_token_lists_its_own_projects_repositories(world, own):
    url = f"/api/v4/projects/{world['project'].pk}/registry/repositories"
    by_header = APIClient().get(url, HTTP_JOB_TOKEN=own["secret"])
    assert by_header.status_code == 200 and [r["id"] for r in by_header.json()] == [own["repository"].pk]
    by_parameter = APIClient().get(
        "/api/v4/projects/acme%2Fplatform%2Fsvc/registry/repositories", {"job_token": own["secret"]}
    )
    assert by_parameter.status_code == 200


@pytest.mark.parametrize("target", ["other", "public", "missing"])
def test_a_job_token_on_another_projects_registry_is_gitlabs_403(world, own, target):
    if target == "missing":
        project_id = "999999"
    else:
        project_id = str(make_project(world["platform"], "other", visibility="private").pk)
        if target == "public":
            project_id = str(make_project(world["acme"], "pub", visibility="public").pk)
    response = APIClient().get(f"/api/v4/projects/{project_id}/registry/repositories", HTTP_JOB_TOKEN=own["secret"])
    assert response.status_code == 403
    assert response.json() == {"message": JOB_TOKEN_OTHER_PROJECT}
    assert JOB_TOKEN_OTHER_PROJECT.startswith("403 Forbidden - This project's CI/CD job token cannot be used")


def test_a_job_token_is_refused_outside_the_registry_endpoints(world, own):
    response = APIClient().get(f"/api/v4/projects/{world['project'].pk}", HTTP_JOB_TOKEN=own["secret"])
    assert response.status_code == 401 and response.json() == {"message": "401 Unauthorized"}


def test_a_finished_or_unknown_job_token_is_401(world, own):
    finished = _job(world["project"], world["users"]["developer"], status=CiJob.Status.SUCCESS)
    url = f"/api/v4/projects/{world['project'].pk}/registry/repositories"
    for secret in (finished, "glcbt-nope"):
        response = APIClient().get(url, HTTP_JOB_TOKEN=secret)
        assert response.status_code == 401 and response.json() == {"message": "401 Unauthorized"}


def test_a_job_acts_with_its_users_role(world, own):
    # A developer's job may not schedule a repository deletion (Maintainer+).
    url = f"/api/v4/projects/{world['project'].pk}/registry/repositories/{own['repository'].pk}"
    assert APIClient().delete(url, HTTP_JOB_TOKEN=own["secret"]).status_code == 403
    maintainer_job = _job(world["project"], world["users"]["maintainer"])
    assert APIClient().delete(url, HTTP_JOB_TOKEN=maintainer_job).status_code == 202
