"""Workspace operations shared by the pages and the JSON API: projects, members, invitations, comments, people.

Routes check *who* may call these (:mod:`knowdo.web.authz`); these functions
check *what* is asked (names, roles, lengths) and raise
:class:`~knowdo.errors.ParameterError` with a readable message, which the
routes turn into a 400 (or 422) answer.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from knowdo.config import CONFIG_NAME, load_project, parse_project
from knowdo.errors import ConfigError, KnowdoError, ParameterError, StoreError
from knowdo.schema import TABLES
from knowdo.store import Store
from knowdo.web.authz import check_role
from knowdo.web.evidence import PANELS
from knowdo.web.jobs import project_lock
from knowdo.web.models import (
    Comment,
    Evidence,
    Invitation,
    Membership,
    Mention,
    Project,
    Rating,
    User,
    utcnow,
)
from knowdo.web.security import check_email, digest, new_token

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TARGET = re.compile(r"^[a-z0-9][a-z0-9_:.-]{0,63}$")
MENTION = re.compile(r"(?<![\w@])@([a-z0-9._-]{1,64})")
COMMENT_MAX = 5000  # characters: a long paragraph; longer notes belong in a document
INVITATION_DAYS = 7  # an invitation link works for a week
UPLOAD_SUFFIXES = (".csv", ".parquet")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48] or "project"
    return slug if slug[0].isalnum() else f"p-{slug}"


# ---------------------------------------------------------------------------- projects
def unique_slug(session: Session, name: str) -> str:
    base, slug, n = slugify(name), slugify(name), 1
    while session.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


def register_project(session: Session, path: Path, name: str | None = None) -> Project:
    """Add an existing project folder (with knowdo.toml) to the workspace, or return it if already there."""
    path = path.resolve()
    found = session.scalar(select(Project).where(Project.path == str(path)))
    if found is not None:
        return found
    config = load_project(path)
    shown = (name or config.name).strip()[:200]
    row = Project(slug=unique_slug(session, shown), name=shown, path=str(path), state={})
    session.add(row)
    session.flush()
    return row


def discover_projects(session: Session, root: Path | None, extra: tuple[Path, ...] = ()) -> list[Project]:
    """Register each sub-folder of ``root`` holding a knowdo.toml (``root`` itself if it is one) and ``extra``."""
    folders = [p.resolve() for p in extra]
    if root is not None and root.exists():
        root = root.resolve()
        folders += [root] if (root / CONFIG_NAME).exists() else sorted(
            p for p in root.iterdir() if p.is_dir() and (p / CONFIG_NAME).exists())
    found = []
    for folder in folders:
        try:
            found.append(register_project(session, folder))
        except ConfigError:
            continue  # a broken knowdo.toml is reported when someone opens that project, not at start-up
    return found


def create_project(session: Session, workspace: Path, *, name: str, start: dt.date, end: dt.date,
                   threshold: int, owner: User) -> Project:
    """A new, empty project folder in the workspace (knowdo.toml without sources), owned by ``owner``."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ParameterError("the project name must be 1 to 200 characters long")
    if start >= end:
        raise ParameterError(f"the project must start before it ends (saw {start} to {end})")
    if not 1 <= threshold <= 1000:
        raise ParameterError(f"the disclosure threshold must be between 1 and 1000 (saw {threshold}); 11 is usual")
    slug = unique_slug(session, name)
    folder = workspace.resolve() / slug
    if folder.exists():
        raise ParameterError(f"a folder named {slug!r} already exists in the workspace; choose another name")
    folder.mkdir(parents=True)
    config = {"project": {"name": name, "start": start, "end": end}, "disclosure": {"threshold": threshold}}
    (folder / CONFIG_NAME).write_text(tomli_w.dumps(config), encoding="utf-8")
    row = Project(slug=slug, name=name, path=str(folder), state={})
    session.add(row)
    session.flush()
    session.add(Membership(user_id=owner.id, project_id=row.id, role="owner"))
    return row


def role_of(session: Session, user_id: int, project_id: int) -> str | None:
    return session.scalar(select(Membership.role).where(Membership.user_id == user_id,
                                                         Membership.project_id == project_id))


def projects_for(session: Session, user: User) -> list[tuple[Project, str | None]]:
    """The projects a user belongs to with their role (administrators also see the others, without a role)."""
    rows = session.execute(select(Project, Membership.role).join(
        Membership, (Membership.project_id == Project.id) & (Membership.user_id == user.id),
        isouter=user.is_admin).order_by(Project.name)).all()
    return [(p, r) for p, r in rows]


# ---------------------------------------------------------------------------- members and invitations
@dataclass(frozen=True)
class InviteOutcome:
    added: bool  # an existing account was added directly
    token: str | None  # the invitation link's token for a new person (shown once)
    email: str


def invite(session: Session, project: Project, *, email: str, role: str, by: User) -> InviteOutcome:
    email = check_email(email)
    role = check_role(role)
    user = session.scalar(select(User).where(User.email == email))
    if user is not None:
        member = session.scalar(select(Membership).where(Membership.user_id == user.id,
                                                         Membership.project_id == project.id))
        if member is not None:
            raise ParameterError(f"{email} is already a member ({member.role}); change the role instead")
        session.add(Membership(user_id=user.id, project_id=project.id, role=role))
        return InviteOutcome(True, None, email)
    token = new_token()
    session.add(Invitation(token_hash=digest(token), email=email, project_id=project.id, role=role, invited_by=by.id,
                           expires_at=utcnow() + dt.timedelta(days=INVITATION_DAYS)))
    return InviteOutcome(False, token, email)


def open_invitation(session: Session, token: str) -> Invitation | None:
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(Invitation).where(Invitation.token_hash == digest(token)))
    if row is None or row.accepted_at is not None or row.expires_at <= utcnow():
        return None
    return row


def set_role(session: Session, project: Project, user_id: int, role: str) -> Membership:
    role = check_role(role)
    member = session.scalar(select(Membership).where(Membership.user_id == user_id,
                                                     Membership.project_id == project.id))
    if member is None:
        raise ParameterError(f"user {user_id} is not a member of this project")
    if member.role == "owner" and role != "owner":
        _keep_an_owner(session, project)
    member.role = role
    return member


def remove_member(session: Session, project: Project, user_id: int) -> None:
    member = session.scalar(select(Membership).where(Membership.user_id == user_id,
                                                     Membership.project_id == project.id))
    if member is None:
        raise ParameterError(f"user {user_id} is not a member of this project")
    if member.role == "owner":
        _keep_an_owner(session, project)
    session.delete(member)


def _keep_an_owner(session: Session, project: Project) -> None:
    owners = session.scalar(select(func.count(Membership.id)).where(Membership.project_id == project.id,
                                                                    Membership.role == "owner")) or 0
    if owners <= 1:
        raise ParameterError("a project needs at least one owner; make someone else owner first")


def members(session: Session, project: Project) -> list[tuple[User, str]]:
    rows = session.execute(select(User, Membership.role).join(Membership, Membership.user_id == User.id).where(
        Membership.project_id == project.id).order_by(User.name)).all()
    return [(u, r) for u, r in rows]


# ---------------------------------------------------------------------------- comments and ratings
def check_target(target: str) -> str:
    if not TARGET.match(target or ""):
        raise ParameterError(f"comment target {target!r} is not valid; use a result key such as 'evidence:cascade'")
    return target


def add_comment(session: Session, project: Project, user: User, *, target: str, body: str) -> Comment:
    """A comment on one result; ``@handle`` of a project member becomes a mention they are shown."""
    target = check_target(target)
    body = body.strip()
    if not body:
        raise ParameterError("the comment is empty; write something before posting")
    if len(body) > COMMENT_MAX:
        raise ParameterError(f"the comment is {len(body):,} characters long; keep it under {COMMENT_MAX:,}")
    comment = Comment(project_id=project.id, user_id=user.id, target=target, body=body)
    session.add(comment)
    session.flush()
    handles = set(MENTION.findall(body.lower()))
    if handles:
        mentioned = session.scalars(select(User.id).join(Membership, Membership.user_id == User.id).where(
            Membership.project_id == project.id, User.handle.in_(handles))).all()
        for uid in mentioned:
            session.add(Mention(comment_id=comment.id, user_id=uid))
    return comment


def comments(session: Session, project: Project, target: str | None = None, limit: int = 200) -> list[Comment]:
    query = select(Comment).options(selectinload(Comment.author)).where(Comment.project_id == project.id)
    if target is not None:
        query = query.where(Comment.target == target)
    return list(session.scalars(query.order_by(Comment.created_at, Comment.id).limit(limit)).all())


def mentions_of(session: Session, project: Project, user: User, limit: int = 20) -> list[Comment]:
    return list(session.scalars(select(Comment).join(Mention, Mention.comment_id == Comment.id).where(
        Comment.project_id == project.id, Mention.user_id == user.id).order_by(Comment.id.desc()).limit(limit)).all())


def set_rating(session: Session, project: Project, user: User, *, target: str, value: int) -> Rating:
    target = check_target(target)
    if not 1 <= value <= 5:
        raise ParameterError(f"a rating runs from 1 (not useful) to 5 (very useful); saw {value}")
    row = session.scalar(select(Rating).where(Rating.project_id == project.id, Rating.user_id == user.id,
                                              Rating.target == target))
    if row is None:
        row = Rating(project_id=project.id, user_id=user.id, target=target, value=value)
        session.add(row)
    else:
        row.value, row.updated_at = value, utcnow()
    return row


def ratings(session: Session, project: Project) -> dict[str, dict[str, Any]]:
    """Per result: how many members rated it and the ratings' distribution (1-5)."""
    out: dict[str, dict[str, Any]] = {}
    for target, value, n in session.execute(select(Rating.target, Rating.value, func.count(Rating.id)).where(
            Rating.project_id == project.id).group_by(Rating.target, Rating.value)).all():
        entry = out.setdefault(target, {"count": 0, "values": {str(v): 0 for v in range(1, 6)}})
        entry["count"] += n
        entry["values"][str(value)] = n
    return out


# ---------------------------------------------------------------------------- evidence
@dataclass(frozen=True)
class CachedEvidence:
    """A project's panels as dictionaries, as JSON bytes (for the API) and as rendered HTML (for the pages)."""

    stamp: Any
    panels: list[dict[str, Any]]
    json: bytes
    by_key: dict[str, bytes]
    html: dict[str, str]


class EvidenceCache:
    """Evidence per project, re-read and re-rendered only when a panel was recomputed.

    Pages are read far more often than panels change, so each panel's body
    (charts, tables, method) is rendered to HTML once and its JSON serialised
    once; a request then only checks the stamp (one small query).
    """

    def __init__(self, render: Callable[[dict[str, Any]], str] | None = None) -> None:
        self._lock = threading.Lock()
        self._cache: dict[int, CachedEvidence] = {}
        self._render = render

    def get(self, session: Session, project_id: int) -> CachedEvidence:
        stamp = tuple(session.execute(select(func.max(Evidence.computed_at), func.count(Evidence.id)).where(
            Evidence.project_id == project_id)).one())
        with self._lock:
            cached = self._cache.get(project_id)
        if cached is not None and cached.stamp == stamp:
            return cached
        rows = session.scalars(select(Evidence).where(Evidence.project_id == project_id)).all()
        order = {k: p.order for k, p in PANELS.items()}
        payloads = sorted((dict(r.payload) for r in rows), key=lambda p: order.get(p.get("key", ""), 999))
        built = CachedEvidence(
            stamp=stamp, panels=payloads, json=_json_bytes(payloads),
            by_key={str(p.get("key")): _json_bytes(p) for p in payloads},
            html={str(p.get("key")): self._render(p) for p in payloads} if self._render else {},
        )
        with self._lock:
            self._cache[project_id] = built
        return built

    def panels(self, session: Session, project_id: int) -> list[dict[str, Any]]:
        return self.get(session, project_id).panels


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


# ---------------------------------------------------------------------------- person-level data
def read_people(path: str, *, offset: int, limit: int) -> tuple[pd.DataFrame, int]:
    """One page of the person-level episodes table and the total number of rows (owner and analyst only)."""
    project = load_project(path)
    if not project.store_path.exists():
        raise StoreError("the project has no data yet: load it first (Data page)")
    lock = project_lock(str(project.root.resolve()))
    # A load may hold the store for a while; a person-level read waits briefly rather than queue behind it.
    if not lock.acquire(timeout=5):
        raise StoreError("the project's store is busy with a load; try again in a minute")
    try:
        with Store.for_project(project) as store:
            if not store.has_table("episodes"):
                raise StoreError("this project has no person-level episodes (aggregate data only)")
            total = int(store.query("SELECT count(*) AS n FROM episodes")["n"].iloc[0])
            page = store.query("SELECT * FROM episodes ORDER BY person_id, episode_no LIMIT ? OFFSET ?",
                               [int(limit), int(offset)])
    finally:
        lock.release()
    return page, total


# ---------------------------------------------------------------------------- uploads
def save_upload(project_path: str, *, table: str, filename: str, content: bytes) -> str:
    """Save an uploaded data file (or a new knowdo.toml) into the project and point knowdo.toml at it."""
    root = Path(project_path)
    suffix = Path(filename or "").suffix.lower()
    if table == "config":
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("the uploaded knowdo.toml is not UTF-8 text") from None
        try:
            config = parse_project(tomllib.loads(text), root, where="the uploaded knowdo.toml")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the uploaded knowdo.toml is not valid TOML: {exc}") from None
        inside = root.resolve()
        for source in config.sources:
            # A file source outside the project folder would let an upload read any file the server can.
            if source.url is None and not source.path.resolve().is_relative_to(inside):
                raise ConfigError(f"the uploaded knowdo.toml names {source.path} for table {source.table!r}, "
                                  "outside the project folder; upload the data files here instead")
        (root / CONFIG_NAME).write_text(text, encoding="utf-8")
        return CONFIG_NAME
    if table not in TABLES:
        raise ParameterError(f"table {table!r} is not a canonical table; use one of {', '.join(TABLES)} or 'config'")
    if suffix not in UPLOAD_SUFFIXES:
        raise ParameterError(f"upload a .csv or .parquet file (saw {filename!r})")
    relative = f"data/uploads/{table}{suffix}"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    with project_lock(str(root.resolve())):
        target.write_bytes(content)
        _point_source(root, table, relative)
    return relative


def _point_source(root: Path, table: str, relative: str) -> None:
    file = root / CONFIG_NAME
    raw = tomllib.loads(file.read_text(encoding="utf-8"))
    sources = [s for s in raw.get("sources", []) if not (isinstance(s, dict) and s.get("table") == table
                                                         and s.get("kind", "csv") == "csv")]
    sources.append({"table": table, "path": relative})
    raw["sources"] = sources
    try:
        file.write_text(tomli_w.dumps(raw), encoding="utf-8")
    except (TypeError, ValueError) as exc:
        raise KnowdoError(f"could not rewrite {CONFIG_NAME}: {exc}") from None
