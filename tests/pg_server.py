"""A throwaway PostgreSQL server for tests: its own cluster in a temporary folder, stopped and removed after.

Debian's ``postgresql`` package supplies the binaries (``/usr/lib/postgresql/<version>/bin``).
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
the package created, and every command runs through ``runuser``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

USER = "gradebook"  # the cluster's superuser: trust authentication, nothing to leak


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or the one on PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.run_as: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("SKIPPED LOUDLY: running as root and there is no 'postgres' user to run PostgreSQL as "
                            "(PostgreSQL refuses root); install Debian's postgresql package, which creates it")
            if not shutil.which("runuser"):
                pytest.skip("SKIPPED LOUDLY: running as root without runuser to start PostgreSQL as 'postgres'")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="gradebook-pg-"))  # not under pytest's 0700 root-only folders
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self._names = itertools.count()

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.run_as, *args], cwd=self.dir, capture_output=True, text=True)
        if done.returncode != 0:
            log = self.dir / "server.log"
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                               + (log.read_text() if log.exists() else ""))

    def start(self) -> None:
        data = self.dir / "data"
        self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        # fsync off: a test cluster need not survive a power cut, and grading tests then write fast.
        options = f"-k {self.dir} -h 127.0.0.1 -p {self.port} -F -c max_connections=60"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        try:
            if (self.dir / "data" / "postmaster.pid").exists():
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w",
                          "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def fresh_database(self) -> str:
        """A new empty database on this server; its URL."""
        import psycopg

        name = f"book_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def postgres_server():
    """Generator for a session fixture: a running server, stopped and removed at the end."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("SKIPPED LOUDLY: PostgreSQL binaries (initdb, pg_ctl) not found; "
                    "install Debian's postgresql package (CI does) to test the PostgreSQL gradebook")
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
