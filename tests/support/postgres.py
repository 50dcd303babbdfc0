"""A real PostgreSQL server on a free loopback port in a temporary directory, started by the tests.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user that
Debian's package creates (`make setup` installs it), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support.mosquitto import free_port, wait_port

RUN_AS = "postgres"


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """One server. `url(db)` gives a psycopg URL; `create_database()` a fresh, empty database."""

    def __init__(self, *, fsync: bool = False) -> None:
        found = bindir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed: run `make setup` (it installs it when root)")
        self.bin = found
        self.fsync = fsync
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="qr-pg-"))
        self.data = self.dir / "data"
        self._preexec: Callable[[], None] | None = None
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._preexec = _become(user.pw_uid, user.pw_gid)
        self.log = self.dir / "server.log"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.dir}'",
            # A crashed server process keeps what it wrote (the OS has it); the tests never crash the OS.
            f"fsync = {'on' if fsync else 'off'}",
            "full_page_writes = off" if not fsync else "",
            "max_connections = 50",
            "shared_buffers = 64MB",
        ]
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write("\n".join(line for line in conf if line) + "\n")
        self.running = False

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / tool), *args],
            check=True,
            preexec_fn=self._preexec,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
        )

    def start(self) -> Postgres:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")
        wait_port(self.port)
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: the server exits without a checkpoint and recovers at the next start."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
            self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _become(uid: int, gid: int) -> Callable[[], None]:
    def preexec() -> None:
        os.setgid(gid)
        os.setgroups([])
        os.setuid(uid)

    return preexec
