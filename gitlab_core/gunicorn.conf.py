"""gunicorn settings for the web process, from the environment (see README.md).

gunicorn passes the undecoded request line as ``RAW_URI``, which the API needs for
project paths with encoded slashes (``acme%2Fsvc``).
"""

from __future__ import annotations

import os

bind = f"{os.environ.get('WEB_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# Token and event requests are short; a stuck request must not hold a worker for long.
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 20
# Trust X-Forwarded-* only from the load balancer's addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
