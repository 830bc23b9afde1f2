"""What Django's error pages and reports may show of settings and request metadata.

Django hides names containing API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE or
HTTP_COOKIE. Our connection strings carry passwords in names ending in ``_URL``
(``DATABASE_URL``, ``CACHE_URL``, ``CELERY_BROKER_URL``), and granian puts the whole
process environment into every request's metadata, so those are hidden too.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class ReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile("API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|_URL$|DSN", flags=re.I)
