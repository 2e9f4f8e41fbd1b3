"""A throwaway PostgreSQL 15 cluster for the tests: the real server, never a mock.

``initdb`` and ``pg_ctl`` run under the unprivileged ``postgres`` user when the tests run as
root (PostgreSQL refuses root). The data directory and the unix socket live in a private
temporary directory; the server listens on a free TCP port of 127.0.0.1 with password
(scram) authentication, so that wrong credentials are a real server refusal. Two test
sessions at once get distinct directories and ports. Without ``initdb`` the tests that
need the server are skipped with the reason.

The fixtures are exposed to every test through one import line in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SEARCH_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin")
ADMIN_USER = "gpadmin"
ADMIN_PASSWORD = "admin-pw-7f3c"
TEST_USER = "gptest"
TEST_PASSWORD = "s3cret-Pw-91ab"
"""The test role's password: tests assert it never appears in a message or a run row."""
START_ATTEMPTS = 3


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None (15 preferred, any other
    Debian-packaged version next)."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    candidates += [Path(d) for d in SEARCH_DIRS]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgCluster:
    """A running test server: URLs for the test role, and stop/start for outage tests."""

    bin_dir: Path
    root: Path
    port: int
    watcher: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str, *, user: str = TEST_USER, password: str = TEST_PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def admin_url(self, dbname: str = "postgres") -> str:
        return self.url(dbname, user=ADMIN_USER, password=ADMIN_PASSWORD)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(ADMIN_PASSWORD + "\n")
        _own(pwfile)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            ADMIN_USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir), "-o", options,
            "-l", str(self.root / "server.log"),
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir), check=False)

    def create_database(self, name: str) -> str:
        """A new empty database owned by the test role; its URL."""
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {TEST_USER}')
        return self.url(name)


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def start_cluster() -> PgCluster:
    """initdb + pg_ctl start on a free port; the caller stops it (:func:`destroy`)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("initdb")
    root = Path(tempfile.mkdtemp(prefix="gp-pg-"))  # short: the socket path is limited
    _own(root)
    cluster = PgCluster(bin_dir, root, free_port())
    cluster.init()
    for attempt in range(START_ATTEMPTS):
        try:
            cluster.start()
            break
        except subprocess.CalledProcessError:
            if attempt == START_ATTEMPTS - 1:
                log = (root / "server.log").read_text(errors="replace")[-2000:]
                destroy(cluster)
                raise RuntimeError(f"PostgreSQL did not start: {log}") from None
            cluster.port = free_port()  # another session took the port meanwhile
    cluster.watcher = _watch(cluster, os.getpid())
    import psycopg

    with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {TEST_USER} LOGIN CREATEDB PASSWORD '{TEST_PASSWORD}'")
    return cluster


def _watch(cluster: PgCluster, owner_pid: int) -> subprocess.Popen[bytes]:
    """A detached shell that stops the server and removes its directory once the test
    process is gone, also when it was killed before its fixture could clean up."""
    stop = [str(cluster.bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(cluster.data_dir)]
    if os.geteuid() == 0:
        stop = ["runuser", "-u", "postgres", "--", *stop]
    script = (
        f"while kill -0 {owner_pid} 2>/dev/null; do sleep 2; done; "
        f"{shlex.join(stop)} >/dev/null 2>&1; rm -rf {shlex.quote(str(cluster.root))}"
    )
    return subprocess.Popen(
        ["sh", "-c", script],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def destroy(cluster: PgCluster) -> None:
    cluster.stop("immediate")
    shutil.rmtree(cluster.root, ignore_errors=True)
    if cluster.watcher is not None:
        cluster.watcher.kill()
        cluster.watcher.wait()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One server for the whole test session (started on first use)."""
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL's initdb is not installed (apt-get install postgresql-15)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install '.[postgres]')")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        destroy(cluster)


_counter = iter(range(1_000_000))


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A fresh empty database for this test, as a URL with the test role's password."""
    name = f"t{os.getpid()}_{next(_counter)}"
    return pg_cluster.create_database(name)
