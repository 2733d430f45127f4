"""Load test of the web workspace: 50 signed-in users browsing the evidence dashboard for 60 s, loopback only.

    python benchmarks/bench_web_load.py [--users 50] [--seconds 60] [--persons 5000]

Builds a temporary workspace holding the example programme, starts
``knowdo.web`` under uvicorn in a child process on 127.0.0.1, waits for the
start-up load to compute every evidence panel, signs each user in through
the real sign-in form (argon2), then lets every user loop over the project
overview, the evidence dashboard and one evidence panel as JSON, as fast as
the server answers. Prints requests per second, latency percentiles and the
error count (any status other than 200). Bounded in requests' time and
addresses: it talks only to the child server on the loopback interface and
stops after ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn

from knowdo.config import load_project
from knowdo.examples import generate_programme, write_project
from knowdo.pipeline import load_project_data
from knowdo.web.app import create_app
from knowdo.web.db import Database
from knowdo.web.models import Membership, User
from knowdo.web.security import HASHER
from knowdo.web.services import register_project
from knowdo.web.settings import Settings

PASSWORD = "load test password, long enough"
PAGES = ("/projects/{slug}", "/projects/{slug}/evidence", "/api/projects/{slug}/evidence/cascade")
ROLES = ("viewer", "community_partner", "implementer")


def serve(workspace: str, port: int) -> None:
    """Child process: run the workspace on the loopback interface (cookies not Secure: plain HTTP test client)."""
    settings = Settings(workspace=Path(workspace), cookie_secure=False)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                timeout_keep_alive=30)


def prepare(workspace: Path, users: int, persons: int) -> str:
    folder = workspace / "example"
    write_project(generate_programme(seed=0, persons=persons), folder, name="Example programme")
    load_project_data(load_project(folder))  # the server computes the evidence at start-up from this store
    settings = Settings(workspace=workspace, cookie_secure=False)
    db = Database(settings.database_url)
    db.upgrade()
    shared = HASHER.hash(PASSWORD)
    with db.session() as s:
        project = register_project(s, folder)
        slug = project.slug
        for i in range(users):
            user = User(email=f"user{i}@example.org", handle=f"user{i}", name=f"User {i}", password_hash=shared,
                        is_admin=False, disabled=False)
            s.add(user)
            s.flush()
            s.add(Membership(user_id=user.id, project_id=project.id, role=ROLES[i % len(ROLES)]))
    db.dispose()
    return slug


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def sign_in(base: str, i: int) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=30.0)
    page = await client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, "the sign-in page carries a CSRF token"
    done = await client.post("/login", data={"email": f"user{i}@example.org", "password": PASSWORD,
                                             "csrf_token": csrf.group(1)})
    assert done.status_code == 303, f"user {i} could not sign in: {done.status_code}"
    return client


async def browse(client: httpx.AsyncClient, slug: str, stop: float, latencies: list[float],
                 errors: list[str], think: float, rng: random.Random, by_page: dict[str, list[float]]) -> None:
    n = rng.randrange(len(PAGES))
    # People do not all click at the same instant: each starts at a random moment within one think time.
    await asyncio.sleep(rng.uniform(0, think))
    while time.perf_counter() < stop:
        if think:
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
        path = PAGES[n % len(PAGES)].format(slug=slug)
        n += 1
        started = time.perf_counter()
        try:
            response = await client.get(path)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                errors.append(f"{path}: {response.status_code}")
            latencies.append(elapsed)
            by_page.setdefault(PAGES[(n - 1) % len(PAGES)], []).append(elapsed)
        except httpx.HTTPError as exc:
            errors.append(f"{path}: {type(exc).__name__}")


async def wait_ready(base: str, slug: str, deadline: float) -> float:
    """Sign in once and wait until the start-up load has put every panel on the dashboard."""
    client = await sign_in(base, 0)
    started = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            panels = (await client.get(f"/api/projects/{slug}/evidence")).json()
            if len(panels) >= len(Settings(workspace=Path(".")).panels):
                return time.perf_counter() - started
            await asyncio.sleep(2)
    finally:
        await client.aclose()
    raise SystemExit("the start-up load did not finish in time")


async def run(base: str, slug: str, users: int, seconds: float,
              think: float) -> tuple[list[float], list[str], float]:
    clients = await asyncio.gather(*(sign_in(base, i) for i in range(users)))
    latencies: list[float] = []
    errors: list[str] = []
    by_page: dict[str, list[float]] = {}
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(*(browse(c, slug, stop, latencies, errors, think, random.Random(i), by_page)
                           for i, c in enumerate(clients)))
    for page, times in sorted(by_page.items()):
        times.sort()
        print(f"  {page}: {len(times):,} requests, p50 {statistics.median(times) * 1000:.0f} ms, "
              f"p99 {times[int(0.99 * (len(times) - 1))] * 1000:.0f} ms")
    wall = time.perf_counter() - started
    await asyncio.gather(*(c.aclose() for c in clients))
    return latencies, errors, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--persons", type=int, default=5_000)
    parser.add_argument("--think", type=float, nargs="+", default=[1.0, 0.0],
                        help="mean seconds between a user's requests (uniform 0.5x-1.5x); one run per value")
    parser.add_argument("--serve", nargs=2, metavar=("WORKSPACE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    workspace = Path(tempfile.mkdtemp(prefix="knowdo-web-load-"))
    slug = prepare(workspace, args.users, args.persons)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(workspace), str(port)],
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.perf_counter() + 600
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1.0)
                break
            except httpx.HTTPError:
                if time.perf_counter() > deadline or child.poll() is not None:
                    raise SystemExit("the workspace server did not start") from None
                time.sleep(0.3)
        ready = asyncio.run(wait_ready(base, slug, deadline))
        print(f"example programme: {args.persons:,} people; start-up load and evidence: {ready:.0f} s")
        for think in args.think:
            latencies, errors, wall = asyncio.run(run(base, slug, args.users, args.seconds, think))
            report(args.users, think, latencies, errors, wall)
    finally:
        child.terminate()
        child.wait(timeout=30)


def report(users: int, think: float, latencies: list[float], errors: list[str], wall: float) -> None:
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    print(f"users {users}, think {think:g} s, {wall:.1f} s: {len(latencies):,} requests, "
          f"{len(latencies) / wall:.1f} requests/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms, errors {len(errors)}")
    if errors:
        print("first errors:", errors[:5])


if __name__ == "__main__":
    main()
