"""Passwords, sessions, CSRF tokens, API tokens, the sign-in rate limit and the audit log.

* Passwords are hashed with argon2id (``argon2-cffi``'s defaults, the RFC 9106
  low-memory profile) and re-hashed on sign-in when those parameters change.
* A session is a random 256-bit token in a ``Secure; HttpOnly; SameSite=Lax``
  cookie (``__Host-`` prefixed); the database keeps only its SHA-256, so a
  copy of the database does not sign anyone in. Signing in always issues a
  fresh token and discards the one the browser came with (no session
  fixation); signing out everywhere deletes every session of the user.
* Every state-changing request carries a CSRF token: the session's own
  (synchroniser token) once signed in, or the value of a pre-session cookie
  (double submit) on the sign-in and invitation forms. Requests
  authenticated by an API token (``Authorization: Bearer``) need none, since a
  browser never sends that header on its own.
* Failed sign-ins are counted per account and per client address; past the
  limit the server answers 429 until the window has passed.
* :func:`audit` appends to the audit log; nothing in the workspace updates or
  deletes it, and database triggers refuse anyone who tries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from knowdo.errors import ParameterError
from knowdo.web.models import ApiToken, AuditEvent, LoginAttempt, User, WebSession, utcnow
from knowdo.web.settings import Settings

HASHER = PasswordHasher()  # argon2id, time_cost 3, 64 MiB, parallelism 4: RFC 9106 section 4, second recommendation
# NIST SP 800-63B-4 section 3.1.1.2: at least 15 characters for a password used as the only factor,
# and verifiers should accept at least 64; the upper bound keeps the hashing work per request bounded.
PASSWORD_MIN = 15
PASSWORD_MAX = 256
TOKEN_BYTES = 32  # 256-bit session, CSRF and API tokens (OWASP Session Management: at least 64 bits of entropy)
API_TOKEN_PREFIX = "kdo_"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Refresh a session's last_seen at most this often, so reads do not turn into writes on every request.
TOUCH_EVERY = dt.timedelta(minutes=5)
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """SHA-256 of a token: what the database stores (tokens are random, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# ---------------------------------------------------------------------------- passwords
def check_password_rules(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise ParameterError(f"the password must be at least {PASSWORD_MIN} characters long (saw {len(password)}); "
                             "a few unrelated words make a long password easy to remember")
    if len(password) > PASSWORD_MAX:
        raise ParameterError(f"the password must be at most {PASSWORD_MAX} characters long (saw {len(password)})")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    if len(password) > PASSWORD_MAX:
        return False
    try:
        return HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise ParameterError(f"{email!r} is not an e-mail address; use the form name@example.org")
    return email


def handle_for(session: Session, email: str) -> str:
    """A unique @handle for mentions, from the e-mail's local part (``ana.lopez@...`` -> ``ana.lopez``)."""
    base = re.sub(r"[^a-z0-9._-]", "", email.split("@", 1)[0].lower())[:40] or "member"
    handle, n = base, 1
    while session.scalar(select(User.id).where(User.handle == handle)) is not None:
        n += 1
        handle = f"{base}{n}"
    return handle


def create_user(session: Session, *, email: str, name: str, password: str, is_admin: bool = False) -> User:
    email = check_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ParameterError(f"an account for {email} already exists; invite it to the project instead")
    name = name.strip() or email.split("@", 1)[0]
    if len(name) > 200:
        raise ParameterError("the name must be at most 200 characters long")
    user = User(email=email, handle=handle_for(session, email), name=name, password_hash=hash_password(password),
                is_admin=is_admin, disabled=False)
    session.add(user)
    session.flush()
    return user


# ---------------------------------------------------------------------------- sessions
@dataclass(frozen=True)
class IssuedSession:
    token: str
    csrf: str
    expires_at: dt.datetime


def start_session(session: Session, user: User, settings: Settings, *, client: str,
                  replacing: str | None = None) -> IssuedSession:
    """Issue a fresh session for ``user``; the token the browser came with (if any) is deleted, never reused."""
    if replacing:
        session.execute(delete(WebSession).where(WebSession.token_hash == digest(replacing)))
    token, csrf = new_token(), new_token()
    now = utcnow()
    expires = now + dt.timedelta(hours=settings.session_hours)
    session.add(WebSession(token_hash=digest(token), user_id=user.id, csrf_token=csrf, created_at=now, last_seen=now,
                           expires_at=expires, client=client[:200]))
    return IssuedSession(token, csrf, expires)


def session_user(session: Session, token: str, settings: Settings) -> tuple[User, WebSession] | None:
    """The user and session behind a cookie value, or ``None`` if unknown, expired, idle too long or disabled."""
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(token)))
    if row is None:
        return None
    now = utcnow()
    if row.expires_at <= now or now - row.last_seen > dt.timedelta(minutes=settings.idle_minutes):
        session.delete(row)
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if now - row.last_seen > TOUCH_EVERY:
        row.last_seen = now
    return user, row


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == digest(token)))


def end_all_sessions(session: Session, user_id: int) -> int:
    """Sign a user out everywhere: delete every session; returns how many there were."""
    result = session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- API tokens
def create_api_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new API token; the secret is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ParameterError("give the token a name of 1 to 100 characters (what script or tool will use it)")
    secret = API_TOKEN_PREFIX + new_token()
    token = ApiToken(user_id=user.id, name=name, token_hash=digest(secret), prefix=secret[:12])
    session.add(token)
    session.flush()
    return token, secret


def token_user(session: Session, secret: str) -> User | None:
    if not secret.startswith(API_TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    if user is None or user.disabled:
        return None
    now = utcnow()
    if token.last_used is None or now - token.last_used > TOUCH_EVERY:
        token.last_used = now
    return user


# ---------------------------------------------------------------------------- sign-in rate limit
def _keys(email: str, client: str) -> tuple[str, str]:
    return f"account:{email.strip().lower()[:254]}", f"client:{client[:200]}"


def login_blocked(session: Session, email: str, client: str, settings: Settings) -> int:
    """Seconds until another attempt is allowed (0 when allowed): per account and per client address."""
    since = utcnow() - dt.timedelta(seconds=settings.login_window_seconds)
    wait = 0
    for key in _keys(email, client):
        count, oldest = session.execute(
            select(func.count(LoginAttempt.id), func.min(LoginAttempt.at)).where(
                LoginAttempt.key == key, LoginAttempt.at > since)
        ).one()
        # A client address may try several accounts (a shared office connection), so it gets four times the budget.
        limit = settings.login_attempts * (4 if key.startswith("client:") else 1)
        if count >= limit and oldest is not None:
            left = settings.login_window_seconds - (utcnow() - oldest).total_seconds()
            wait = max(wait, int(left) + 1)
    return wait


def record_failure(session: Session, email: str, client: str, settings: Settings) -> None:
    now = utcnow()
    for key in _keys(email, client):
        session.add(LoginAttempt(key=key, at=now))
    # Old attempts are never needed again; clearing them here keeps the table small without a scheduler.
    cutoff = now - dt.timedelta(seconds=settings.login_window_seconds)
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < cutoff))


def clear_failures(session: Session, email: str) -> None:
    session.execute(delete(LoginAttempt).where(LoginAttempt.key == _keys(email, "")[0]))


# ---------------------------------------------------------------------------- audit
def audit(session: Session, *, action: str, user: User | None, project_id: int | None = None, target: str = "",
          detail: dict[str, Any] | None = None, client: str = "") -> None:
    """Append one event to the audit log (the only write path to it)."""
    session.add(AuditEvent(at=utcnow(), user_id=user.id if user else None, user_email=user.email if user else "",
                           project_id=project_id, action=action[:64], target=target[:200], detail=detail or {},
                           client=client[:200]))
