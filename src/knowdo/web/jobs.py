"""Background jobs: loads, analyses, scenario runs and report exports run in a thread pool, not in the request.

A request creates a :class:`~knowdo.web.models.Job` row and returns at once;
a worker thread runs the job's function, which reports progress through
:meth:`JobContext.progress` (a fraction and a message, written to the row),
and the page polls the row. A job that raises a knowdo error fails with its
message; anything else fails with a generic message and the traceback goes
to the server log. Jobs still queued or running when the server stopped are
marked failed at start-up, since their threads are gone.

Each project's DuckDB store is used by one thread at a time
(:func:`project_lock`): a load and a person-level read of the same project
wait for each other rather than collide on the file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from knowdo.errors import KnowdoError, SchemaError
from knowdo.web.db import Database
from knowdo.web.models import Job, utcnow

log = logging.getLogger("knowdo.web.jobs")
JobKind = str
STATUSES = ("queued", "running", "succeeded", "failed")
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def project_lock(path: str) -> threading.RLock:
    """The lock serialising access to one project's store within this process."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.RLock())


@dataclass
class JobContext:
    """What a running job may do: report progress and reach the database."""

    job_id: int
    db: Database

    def progress(self, fraction: float, message: str) -> None:
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == self.job_id).values(
                progress=max(0.0, min(1.0, float(fraction))), message=message[:500]))


Work = Callable[[JobContext], dict[str, Any]]


class JobRunner:
    """A small thread pool that runs jobs and records their outcome."""

    def __init__(self, db: Database, workers: int = 2) -> None:
        self.db = db
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="knowdo-job")
        self._futures: dict[int, Future[None]] = {}

    def recover(self) -> int:
        """Mark jobs left queued or running by a previous server as failed; returns how many."""
        with self.db.session() as s:
            result = s.execute(update(Job).where(Job.status.in_(("queued", "running"))).values(
                status="failed", error="the server stopped before this job finished; start it again",
                finished_at=utcnow()))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def submit(self, *, project_id: int, user_id: int | None, kind: JobKind, params: dict[str, Any],
               work: Work) -> int:
        with self.db.session() as s:
            job = Job(project_id=project_id, user_id=user_id, kind=kind, status="queued", progress=0.0,
                      message="waiting for a free worker", params=params)
            s.add(job)
            s.flush()
            job_id = job.id
        self._futures[job_id] = self._pool.submit(self._run, job_id, work)
        return job_id

    def _run(self, job_id: int, work: Work) -> None:
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(status="running", started_at=utcnow(),
                                                                 message="starting"))
        try:
            result = work(JobContext(job_id, self.db))
        except SchemaError as exc:
            self._finish(job_id, "failed", None, exc.report())
        except KnowdoError as exc:
            self._finish(job_id, "failed", None, f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("job %s failed", job_id)
            self._finish(job_id, "failed", None, "an unexpected error stopped this job; the server log has details")
        else:
            self._finish(job_id, "succeeded", result, None)
        finally:
            self._futures.pop(job_id, None)

    def _finish(self, job_id: int, status: str, result: dict[str, Any] | None, error: str | None) -> None:
        with self.db.session() as s:
            values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "result": result, "error": error}
            if status == "succeeded":
                values.update(progress=1.0, message="done")
            s.execute(update(Job).where(Job.id == job_id).values(**values))

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Block until a job submitted by this runner finishes (tests and the CLI use it)."""
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def active(self, project_id: int, kinds: tuple[str, ...]) -> Job | None:
        with self.db.session() as s:
            return s.scalar(select(Job).where(Job.project_id == project_id, Job.kind.in_(kinds),
                                              Job.status.in_(("queued", "running"))).order_by(Job.id))

    def shutdown(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)
