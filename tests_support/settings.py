"""The settings of the test suite: the service's own, from the environment, with a random
``SECRET_KEY`` when none is given.

``DEBUG`` is off by default and the settings then refuse the development key, as in
production. The key is put into the environment before the settings read it, so that the
servers and workers the tests start (granian, Celery) inherit the same key.
"""

from __future__ import annotations

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(64))

from gitlab_core.settings import *  # noqa: E402, F403
