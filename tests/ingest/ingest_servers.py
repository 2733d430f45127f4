"""Real servers on loopback for the connector tests: a scripted HTTP server and a throwaway PostgreSQL.

``ScriptedServer`` answers each path with a scripted list of replies (status,
body, delay), one per request, repeating the last, and records what it was
asked, so tests can check retries, paging, auth headers and failures over
real sockets. ``postgres_cluster`` starts Debian's PostgreSQL in a temporary
folder on a free loopback port (as the ``postgres`` user when run as root,
since the server refuses to run as root) and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    delay: float = 0.0
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # announce the full length but close after half the body


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append(Seen(method, parts.path, parse_qs(parts.query), dict(self.headers), body))
                script = server.routes.get(parts.path)
                if not script:
                    reply = Reply(404, b'{"message":"no such path"}')
                else:
                    reply = script.pop(0) if len(script) > 1 else script[0]
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body[: len(reply.body) // 2] if reply.cut else reply.body)
                    if reply.cut:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def asked(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


# --------------------------------------------------------------------------- PostgreSQL
def postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


@contextlib.contextmanager
def postgres_cluster(base: Path) -> Iterator[Cluster]:
    """A PostgreSQL server with trust auth on 127.0.0.1, in ``base``; stopped and removed on exit."""
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (Debian package postgresql) are not installed")
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    data = base / "pgdata"
    sockets = base / "sockets"
    base.mkdir(parents=True, exist_ok=True)
    sockets.mkdir(exist_ok=True)
    if as_root:
        shutil.chown(base, user="postgres")
        shutil.chown(sockets, user="postgres")

    def run(*args: str) -> None:
        command = [str(bindir / args[0]), *args[1:]]
        if as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    port = _free_port()
    run("initdb", "-D", str(data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8")
    run("pg_ctl", "-D", str(data), "-w", "-t", "60", "-l", str(base / "server.log"),
        "-o", f"-h 127.0.0.1 -p {port} -k {sockets} -F", "start")
    try:
        yield Cluster("127.0.0.1", port, user)
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Cluster]:
    """A PostgreSQL server in a fresh temporary folder for one test module.

    Without the server binaries the test fails under CI (they are part of the test set-up) and
    skips with the reason elsewhere.
    """
    if postgres_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (Debian package postgresql) must be installed under CI")
        pytest.skip("PostgreSQL server binaries are not installed")
    base = Path(tempfile.mkdtemp(prefix="knowdo-pg-"))
    base.chmod(0o755)  # the server runs as 'postgres' when tests run as root
    try:
        with postgres_cluster(base) as cluster:
            yield cluster
    finally:
        shutil.rmtree(base, ignore_errors=True)
