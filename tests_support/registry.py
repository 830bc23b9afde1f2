"""The real registry for end-to-end tests: config, process, images and skopeo.

The tests drive CNCF distribution 2.8 (Debian's ``docker-registry``) and ``skopeo``
exactly as production does; nothing here fakes the registry. Images are built offline
with ``umoci`` so that no network is needed.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests

REGISTRY_BINARY = "docker-registry"
SERVICE = "container_registry"
START_TIMEOUT = 15.0
SKOPEO_TIMEOUT = 60


class RequestCounter:
    """Counts the HTTP requests a ``RegistryClient`` sends, by wrapping its session
    (tests and benchmarks: the client keeps no counter of its own). ``sent`` lists each
    request as (method, URL path); the client's reader threads append to it."""

    def __init__(self, client) -> None:
        self.count = 0
        self.sent: list[tuple[str, str]] = []
        send = client.session.request

        def counted(method, url, *args, **kwargs):
            self.count += 1
            self.sent.append((method, urlsplit(url).path))
            return send(method, url, *args, **kwargs)

        client.session.request = counted


class RegistryError(RuntimeError):
    """The registry could not be started or stopped."""


def missing_tools() -> list[str]:
    """Names of the external programs the end-to-end tests need and cannot find."""
    return [name for name in (REGISTRY_BINARY, "skopeo", "umoci") if shutil.which(name) is None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def generate_key_pair(*, key_path: Path, cert_path: Path) -> None:
    """Write an RSA signing key and its self-signed certificate (the ``rootcertbundle``).

    Uses the service's own generator when it is available, so the tests exercise it.
    """
    try:
        from jwt_auth.keys import generate_key_pair as service_generate
    except ImportError:
        service_generate = None
    if service_generate is not None:
        service_generate(key_path=Path(key_path), cert_path=Path(cert_path))
        return
    _generate_key_pair_with_cryptography(key_path=Path(key_path), cert_path=Path(cert_path))


def _generate_key_pair_with_cryptography(*, key_path: Path, cert_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitlab-registry-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def render_config(
    *,
    port: int,
    data_dir: Path,
    realm: str,
    issuer: str,
    cert_bundle: Path,
    notification_url: str | None,
    notification_secret: str,
    read_only: bool = False,
) -> dict:
    """The registry's config as a dict, from the service's own generator
    (``container_registry.registry_config``) with the test's addresses. Only the test's
    conveniences differ: no access log, quick notification retries, no upload purging."""
    from container_registry.registry_config import Notifications, build_config

    notifications = None
    if notification_url:
        notifications = Notifications(url=notification_url, secret=notification_secret, timeout="1s", threshold=3)
    config = build_config(
        realm_url=realm,
        service=SERVICE,
        issuer=issuer,
        cert_bundle=cert_bundle,
        listen=f"127.0.0.1:{port}",
        storage_root=data_dir,
        http_secret=secrets.token_hex(16),
        notifications=notifications,
        read_only=read_only,
    )
    config["log"]["accesslog"] = {"disabled": True}
    config["storage"]["maintenance"]["uploadpurging"] = {"enabled": False}
    return config


@dataclass
class Registry:
    """One registry process on 127.0.0.1 with filesystem storage in ``data_dir``."""

    port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def ref(self, path: str, tag: str = "latest") -> str:
        """The skopeo reference of ``path:tag`` in this registry."""
        return f"docker://{self.host_port}/{path}:{tag}"

    def log(self) -> str:
        """The registry's log so far (useful in assertion messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the process (again, with the same storage) and wait until /v2/ answers."""
        if self.process is not None and self.process.poll() is None:
            return
        if port_answers(self.port):
            raise RegistryError(f"port {self.port} already answers; refusing to start a second registry there")
        # The registry treats every REGISTRY_* variable as a config override.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RegistryError(f"registry exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = requests.get(f"{self.url}/v2/", timeout=1)
            except requests.ConnectionError:
                time.sleep(0.05)
                continue
            if response.status_code in (200, 401):
                return
            raise RegistryError(f"/v2/ answered {response.status_code}:\n{self.log()}")
        self.stop()
        raise RegistryError(f"registry did not answer within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the process; storage stays in place for a later ``start()``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def create_registry(
    *,
    work_dir: Path,
    realm: str,
    issuer: str,
    cert_bundle: Path,
    notification_url: str | None,
    notification_secret: str,
    read_only: bool = False,
) -> Registry:
    """Write a config.yml under ``work_dir`` for a registry on a free port (not started)."""
    from container_registry.registry_config import render

    work_dir = Path(work_dir)
    data_dir = work_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = render_config(
        port=port,
        data_dir=data_dir,
        realm=realm,
        issuer=issuer,
        cert_bundle=cert_bundle,
        notification_url=notification_url,
        notification_secret=notification_secret,
        read_only=read_only,
    )
    config_path = work_dir / "config.yml"
    config_path.write_text(render(config))
    return Registry(port=port, data_dir=data_dir, config_path=config_path, log_path=work_dir / "registry.log")


def _run(args: list[str], *, timeout: int = SKOPEO_TIMEOUT) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def build_image(
    dest_dir: str | Path,
    *,
    size: int = 1024,
    created: datetime | None = None,
    seed: str = "",
    tag: str = "latest",
) -> str:
    """Build a one-layer OCI image offline and return its skopeo source ref ``oci:<dir>:<tag>``.

    The layer holds ``size`` pseudo-random bytes derived from ``seed``: the same seed and
    size give the same layer, another seed gives another digest. ``created`` sets the
    image config's creation time (what cleanup policies read). Several tags may share
    one ``dest_dir``.
    """
    dest = Path(dest_dir)
    if not (dest / "index.json").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        _run(["umoci", "init", "--layout", str(dest)])
    image = f"{dest}:{tag}"
    _run(["umoci", "new", "--image", image])
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "payload.bin"
        payload.write_bytes(random.Random(f"{seed}:{size}").randbytes(size))
        # A fixed mtime keeps the layer tarball (and so its digest) reproducible.
        os.utime(payload, (0, 0))
        insert = ["umoci", "insert", "--image", image, "--no-history"]
        if os.geteuid() != 0:
            insert.append("--rootless")
        _run([*insert, str(payload), "/payload.bin"])
    if created is not None:
        stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _run(["umoci", "config", "--image", image, "--no-history", "--created", stamp])
    return f"oci:{dest}:{tag}"


_TLS_SUBCOMMANDS = {"inspect", "list-tags", "delete", "login", "logout", "manifest-digest"}


def skopeo(*args: str, creds: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``skopeo <args>`` against the plain-HTTP test registry and capture its output.

    TLS verification is switched off on the docker:// side(s); ``creds`` ("user:secret")
    is given to the docker:// side(s). A throwaway auth file keeps the machine's own
    credentials out of the test. With ``check`` a non-zero exit raises with the output.
    """
    if not args:
        raise ValueError("skopeo needs a subcommand")
    command, rest = args[0], list(args[1:])
    flags: list[str] = []
    if command in ("copy", "sync"):
        refs = [a for a in rest if not a.startswith("-")]
        if refs[:1] and refs[0].startswith("docker://"):
            flags.append("--src-tls-verify=false")
            if creds:
                flags.append(f"--src-creds={creds}")
        if refs[1:2] and refs[1].startswith("docker://"):
            flags.append("--dest-tls-verify=false")
            if creds:
                flags.append(f"--dest-creds={creds}")
    elif command in _TLS_SUBCOMMANDS:
        flags.append("--tls-verify=false")
        if creds and command not in ("login", "logout", "manifest-digest"):
            flags.append(f"--creds={creds}")
    with tempfile.TemporaryDirectory() as tmp:
        auth_file = Path(tmp) / "auth.json"
        auth_file.write_text("{}")
        if command != "manifest-digest":
            flags.append(f"--authfile={auth_file}")
        cmd = ["skopeo", "--insecure-policy", command, *flags, *rest]
        env = {k: v for k, v in os.environ.items() if k != "REGISTRY_AUTH_FILE"}
        env["HOME"] = tmp
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT, stdin=subprocess.DEVNULL, env=env
        )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def list_tags(registry: Registry, path: str, *, creds: str | None = None) -> list[str]:
    """The tags skopeo lists for ``path``, sorted; ``[]`` for a repository the registry
    does not know (never pushed, or all of it deleted)."""
    result = skopeo("list-tags", f"docker://{registry.host_port}/{path}", creds=creds, check=False)
    if result.returncode != 0:
        assert "name unknown" in result.stderr.lower(), result.stderr
        return []
    return sorted(json.loads(result.stdout)["Tags"] or [])


def wait_until(predicate, *, timeout: float = 20.0, message: str = "condition"):
    """Poll ``predicate`` until it returns something true (returned), or fail after
    ``timeout`` seconds: registry notifications arrive asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")
