"""Settings of one running workspace: where projects live, the database, cookies and limits.

Everything the server needs is one frozen :class:`Settings`, built by
``knowdo serve`` from its options (or by tests directly), so no module reads
the environment behind the caller's back. Secrets are never settings: the
first administrator's password comes from a prompt or the environment once,
and only its argon2 hash is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowdo.errors import ParameterError

SQLITE_NAME = "knowdo-workspace.sqlite"
# The evidence panels a load computes, in dashboard order (see knowdo.web.evidence.PANELS).
DEFAULT_PANELS = ("cascade", "reaim", "proctor", "perceptions", "equity", "effects")


@dataclass(frozen=True)
class Settings:
    """How one workspace runs.

    Parameters
    ----------
    workspace
        Folder holding the projects (each a folder with ``knowdo.toml``); new
        projects are created here.
    database_url
        SQLAlchemy URL of the accounts database; default: SQLite in ``workspace``.
    cookie_secure
        Mark cookies ``Secure`` (sent over HTTPS only; browsers also accept
        them from ``http://localhost`` and ``http://127.0.0.1``). Turn off only
        to try the workspace over plain HTTP on another address.
    """

    workspace: Path
    database_url: str = ""
    cookie_secure: bool = True
    # 12 hours: one working day; NIST SP 800-63B-4 section 2.2.3 allows up to 12 h for AAL1 re-authentication.
    session_hours: float = 12.0
    # Idle timeout; NIST SP 800-63B-4 suggests 30 min idle at AAL2, we take 2 h for a shared analysis tool (AAL1).
    idle_minutes: float = 120.0
    # Failed sign-ins allowed per account (and per client address) in the window before refusing (HTTP 429);
    # NIST SP 800-63B-4 section 3.2.2 caps consecutive failures at 100, OWASP suggests far fewer: ours is 5 per 15 min.
    login_attempts: int = 5
    login_window_seconds: int = 15 * 60
    # Upload limit per file: the example programme's largest CSV at 20,000 people is about 20 MB.
    upload_max_bytes: int = 200 * 1024 * 1024
    job_workers: int = 2  # background threads for loads and scenario runs (the machine target has 2 cores)
    panels: tuple[str, ...] = DEFAULT_PANELS
    # Keyword settings per panel for the core functions behind it, e.g. {"equity": {"draws": 200}}.
    panel_options: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    # Example programme size offered by the "load the example" button (knowdo demo's default is 20,000).
    example_persons: int = 20_000
    scenario_draws: int = 100  # posterior draws per scenario run (knowdo.complexity DEFAULT_DRAWS)
    scenario_horizon: int = 36  # months (knowdo.complexity DEFAULT_HORIZON)
    people_page_size: int = 50  # rows per page of the person-level view
    # Project folders to register at start-up besides those found in the workspace (when ``discover``).
    projects: tuple[Path, ...] = ()
    discover: bool = True
    # Load each registered project whose store exists but whose evidence is not in the workspace yet.
    analyse_on_start: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "workspace", Path(self.workspace))
        object.__setattr__(self, "projects", tuple(Path(p) for p in self.projects))
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.workspace / SQLITE_NAME}")
        for name in ("session_hours", "idle_minutes", "login_attempts", "login_window_seconds", "upload_max_bytes",
                     "job_workers", "example_persons", "scenario_draws", "scenario_horizon", "people_page_size"):
            value = getattr(self, name)
            if not value > 0:
                raise ParameterError(f"Settings: {name} must be positive, saw {value!r}")

    @property
    def session_cookie(self) -> str:
        """``__Host-`` cookies must be Secure, path /, without domain: a subdomain cannot plant one."""
        return "__Host-knowdo_session" if self.cookie_secure else "knowdo_session"

    @property
    def presession_cookie(self) -> str:
        """Carries the CSRF token of forms shown before sign-in (login, invitations)."""
        return "__Host-knowdo_pre" if self.cookie_secure else "knowdo_pre"
