"""A throwaway PostgreSQL server for the tests, and a fresh database per test.

`PostgresServer.start()` runs initdb and pg_ctl in a new temporary folder: the server listens only on a
Unix socket in that folder (no TCP port), with fsync off, and is stopped and deleted by `stop()`.
PostgreSQL refuses to run as root, so as root its commands run as the `postgres` user (`runuser`).
With `TEST_DATABASE_URL=postgresql://…` (a role that may create databases) an existing server is used.

`await server.fresh_url()` returns the URL of an empty place of its own: for the store's tests, and for
anything that wants a bot process (or two) on its own PostgreSQL database. It is a new schema in the
server's database, named in the URL's `search_path` (asyncpg sends unknown URL parameters as server
settings): to the bot as good as a new database (its own tables, `now_utc()` and `schema_migrations`),
and about a millisecond to make where `CREATE DATABASE` takes about 0.4 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ENV_URL = "TEST_DATABASE_URL"


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/N/bin (newest)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


class Postgres:
    """A server the tests may create databases on."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url_for(self, database: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{database}"))

    async def fresh_url(self) -> str:
        """The URL of a new, empty schema of its own in the server's database."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE SCHEMA "{name}"')
        finally:
            await conn.close()
        parts = urlsplit(self.admin_url)
        query = "&".join(filter(None, [parts.query, f"search_path={name}"]))
        return urlunsplit(parts._replace(query=query))

    def stop(self) -> None:
        """An existing server is left running."""


class PostgresServer(Postgres):
    """A server of our own, in a temporary folder, for this test session."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="bot-pg-"))
        self.data = self.root / "data"
        super().__init__(f"postgresql://postgres@/postgres?host={self.root}")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{program} failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync")
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again)."""
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.root}' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")

    def halt(self) -> None:
        """Stop the server as an operator would (fast shutdown): every connection is cut; the data stays."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> Postgres:
    """`TEST_DATABASE_URL`'s server, else a new one of our own. Raises LookupError when there are no
    PostgreSQL binaries on this machine."""
    if os.environ.get(ENV_URL):
        return Postgres(os.environ[ENV_URL])
    bindir = find_binaries()
    if bindir is None:
        raise LookupError("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin; "
                          f"install PostgreSQL or set {ENV_URL}")
    server = PostgresServer(bindir)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
