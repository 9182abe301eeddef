"""A throwaway PostgreSQL server for the store tests (a pytest plugin of tests/conftest.py).

``pg_server`` (session): ``initdb`` in a temporary folder, run as an unprivileged user
(``postgres`` through ``runuser`` when the tests run as root: initdb refuses root), the
server started on a free port on 127.0.0.1 and stopped after the session.
``pg_url`` (function): a fresh database on it, dropped after the test.

Without the server binaries (Debian package ``postgresql``) the PostgreSQL tests are
skipped, except under ``CI=true``, where they fail: CI must test the department store.
``BUSVIEWER_TEST_PG=host:port`` uses a running server instead (trust authentication for
user ``busviewer``, allowed to create databases), e.g. to iterate on a loaded machine.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temporary folder, trust authentication on 127.0.0.1."""

    user = "busviewer"

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        self.root = Path(tempfile.mkdtemp(prefix="busviewer-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = 0
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root, and runuser (util-linux) is missing to run initdb as postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        out = subprocess.run([*self.run_as, *args], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({out.returncode}): {out.stderr[-2000:]}{log}")

    def start(self) -> None:
        assert self.initdb and self.pg_ctl
        self._run(
            self.initdb, "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8", "--no-locale", "--no-sync"
        )
        for _attempt in range(3):  # the free port may be taken between the probe and the start
            self.port = _free_port()
            opts = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40"
            )
            try:
                self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", opts, "start")
                return
            except RuntimeError:
                if _attempt == 2:
                    raise

    def stop(self) -> None:
        if self.run_as is None:  # an external server: not ours to stop
            return
        if self.pg_ctl and (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self.run_as, self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ExternalPgServer(PgServer):
    """A server that is already running (``BUSVIEWER_TEST_PG``)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1", "BUSVIEWER_TEST_PG must be 127.0.0.1:PORT"
        self.port = int(port)
        self.run_as = None  # type: ignore[assignment]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if os.environ.get("BUSVIEWER_TEST_PG"):
        yield ExternalPgServer(os.environ["BUSVIEWER_TEST_PG"])
        return
    missing = [n for n in ("initdb", "pg_ctl") if _binary(n) is None]
    if missing:
        message = (
            f"PostgreSQL server binaries not found ({', '.join(missing)}): install the Debian package "
            "postgresql (apt-get install -y postgresql; .ci/run does)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = PgServer()
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)
