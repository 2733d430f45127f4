"""Security properties of the workspace, on SQLite and on PostgreSQL.

CSRF refusal, session fixation, cookie flags, the sign-in rate limit,
password hashing, sign-out everywhere, API tokens, the audit log written on
each person-level read and refusing edits, security headers, and that no
disclosure-controlled view (pages and JSON) holds a count under the
project's threshold, while the unsuppressed results did have such counts.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from web_support import PASSWORD, SLUG, WebEnv, backend_url, csrf_from, postgres_server, web_env  # noqa: F401

from knowdo.config import load_project
from knowdo.report.publish import COUNT_KEYS, NOT_PERSON_UNITS
from knowdo.store import Store
from knowdo.web.models import AuditEvent, User, WebSession
from knowdo.web.security import PASSWORD_MIN, create_api_token, hash_password, verify_password

P = f"/projects/{SLUG}"
COUNT_HEADERS = {"Numerator", "Denominator", "N", "Count", "People"}


def _login(env: WebEnv, email: str, password: str = PASSWORD) -> Any:
    page = env.client.get("/login")
    return env.client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_from(page.text)},
                           follow_redirects=False)


def test_state_changing_requests_need_the_csrf_token(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    with web_env(tmp_path, backend_url) as env:
        csrf = env.sign_in("community_partner")
        form = {"target": "evidence:cascade", "body": "hello"}
        assert env.client.post(f"{P}/comments", data=form, follow_redirects=False).status_code == 403
        assert env.client.post(f"{P}/comments", data={**form, "csrf_token": "forged"},
                               follow_redirects=False).status_code == 403
        api = {"target": "evidence:cascade", "body": "hello"}
        assert env.client.post(f"/api{P}/comments", json=api).status_code == 403
        assert env.client.post(f"/api{P}/comments", json=api, headers={"X-CSRF-Token": "x"}).status_code == 403
        assert env.client.post(f"{P}/comments", data={**form, "csrf_token": csrf},
                               follow_redirects=False).status_code == 303
        assert env.client.post(f"/api{P}/comments", json=api, headers={"X-CSRF-Token": csrf}).status_code == 201
        # Another user's token does not work with this session.
        other_csrf = env.session_for("owner")[1]
        assert env.client.post(f"{P}/comments", data={**form, "csrf_token": other_csrf},
                               follow_redirects=False).status_code == 403
        # The sign-in form is protected too (login CSRF): no pre-session cookie, no sign-in.
        env.client.cookies.clear()
        assert env.client.post("/login", data={"email": "owner@example.org", "password": PASSWORD,
                                               "csrf_token": "guess"}, follow_redirects=False).status_code == 403


def test_api_tokens_need_no_csrf_and_stop_working_when_revoked(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    with web_env(tmp_path, backend_url) as env:
        with env.db.session() as s:
            user = s.get(User, env.users["implementer"])
            assert user is not None
            token, secret = create_api_token(s, user, "script")
            token_id = token.id
            assert secret not in {token.token_hash, token.prefix}  # only a digest is stored
        env.client.cookies.clear()
        bearer = {"Authorization": f"Bearer {secret}"}
        assert env.client.get("/api/me", headers=bearer).json()["email"] == "implementer@example.org"
        created = env.client.post(f"/api{P}/comments", headers=bearer, json={"target": "project", "body": "via API"})
        assert created.status_code == 201
        assert env.client.get(f"/api{P}/people", headers=bearer).status_code == 403
        csrf = env.sign_in("implementer")
        assert env.client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf},
                               follow_redirects=False).status_code == 303
        env.client.cookies.clear()
        assert env.client.get("/api/me", headers=bearer).status_code == 401
        assert env.client.get("/api/me", headers={"Authorization": "Bearer kdo_not-a-token"}).status_code == 401


def test_cookie_flags_and_session_fixation(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    with web_env(tmp_path, backend_url) as env:
        name = env.settings.session_cookie
        assert name.startswith("__Host-")
        # An attacker's own valid session, planted in the victim's browser before the victim signs in.
        planted, _ = env.session_for("viewer")
        env.client.cookies.clear()
        env.client.cookies.set(name, planted[name])
        page = env.client.get("/login")
        response = env.client.post("/login", data={"email": "analyst@example.org", "password": PASSWORD,
                                                   "csrf_token": csrf_from(page.text)}, follow_redirects=False)
        assert response.status_code == 303
        header = next(h for h in response.headers.get_list("set-cookie") if h.startswith(name + "="))
        issued = header.split(";", 1)[0].split("=", 1)[1]
        flags = {f.strip().lower() for f in header.split(";")[1:]}
        assert {"secure", "httponly", "path=/", "samesite=lax"} <= flags
        assert not any(f.startswith("domain") for f in flags)
        assert issued and issued != planted[name], "signing in must issue a new session token"
        # The planted token is gone; the new one is the analyst's.
        env.client.cookies.clear()
        env.client.cookies.set(name, planted[name])
        assert env.client.get("/api/me").status_code == 401
        env.client.cookies.set(name, issued)
        assert env.client.get("/api/me").json()["email"] == "analyst@example.org"
        with env.db.session() as s:
            stored = s.scalars(select(WebSession.token_hash)).all()
        assert issued not in stored  # only digests are stored


def test_sign_in_rate_limit(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    with web_env(tmp_path, backend_url) as env:
        limit = env.settings.login_attempts
        for _ in range(limit):
            assert _login(env, "owner@example.org", "wrong password, clearly").status_code == 401
        refused = _login(env, "owner@example.org")  # even the right password is refused now
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert _login(env, "viewer@example.org").status_code == 303  # other accounts are not locked out
        with env.db.session() as s:
            failed = s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "login.failed"))
        assert failed == limit


def test_passwords_are_argon2id_hashes(tmp_path: Path) -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert verify_password(stored, PASSWORD) and not verify_password(stored, PASSWORD + "x")
    assert hash_password(PASSWORD) != stored  # salted
    with pytest.raises(ValueError, match=f"at least {PASSWORD_MIN} characters"):
        hash_password("short")


def test_sign_out_everywhere_ends_every_session(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    with web_env(tmp_path, backend_url) as env:
        first, _ = env.session_for("analyst")
        csrf = env.sign_in("analyst")
        second = dict(env.client.cookies)
        response = env.client.post("/logout/everywhere", data={"csrf_token": csrf}, follow_redirects=False)
        assert response.status_code == 303
        for cookies in (first, second):
            env.client.cookies.clear()
            for k, v in cookies.items():
                env.client.cookies.set(k, v)
            assert env.client.get("/api/me").status_code == 401


def _audit_count(env: WebEnv) -> int:
    with env.db.session() as s:
        return int(s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "person_level.read")) or 0)


def test_every_person_level_read_is_audited_and_the_log_cannot_be_edited(tmp_path: Path,
                                                                        backend_url: str) -> None:  # noqa: F811
    with web_env(tmp_path, backend_url) as env:
        before = _audit_count(env)
        env.sign_in("analyst")
        page = env.client.get(f"{P}/people?page=2")
        assert page.status_code == 200 and "person_id" in page.text.lower().replace(" ", "_")
        assert _audit_count(env) == before + 1
        rows = env.client.get(f"/api{P}/people?limit=7&offset=3").json()
        assert len(rows["rows"]) == 7 and rows["total"] > 7
        assert _audit_count(env) == before + 2
        env.sign_in("implementer")
        assert env.client.get(f"/api{P}/people").status_code == 403
        assert _audit_count(env) == before + 2  # a refused request reads nothing
        with env.db.session() as s:
            last = s.scalars(select(AuditEvent).where(AuditEvent.action == "person_level.read").order_by(
                AuditEvent.id.desc())).first()
            assert last is not None and last.user_email == "analyst@example.org"
            assert last.detail["rows"] == 7
        env.sign_in("owner")
        audit_page = env.client.get(f"{P}/audit")
        assert "person_level.read" in audit_page.text and "analyst@example.org" in audit_page.text
        for statement in ("UPDATE audit_log SET action = 'edited'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"), env.db.engine.begin() as con:
                con.execute(text(statement))
        assert _audit_count(env) == before + 2


def test_security_headers(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        env.sign_in("viewer")
        response = env.client.get(f"{P}/evidence")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" in response.headers  # the test client speaks https


class _Tables(HTMLParser):
    """Cells of every <table class="data"> with their column header, and every chart specification."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []
        self.specs: list[Any] = []
        self._headers: list[str] = []
        self._in: str | None = None
        self._col = 0
        self._text = ""
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._headers = []
        elif tag == "tr":
            self._col = 0
        elif tag in ("th", "td"):
            self._in, self._text = tag, ""
        elif tag == "script" and a.get("type") == "application/json" and str(a.get("id", "")).endswith("-spec"):
            self._script, self._text = True, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "th" and self._in == "th":
            self._headers.append(self._text.strip())
            self._in = None
        elif tag == "td" and self._in == "td":
            header = self._headers[self._col] if self._col < len(self._headers) else ""
            self.cells.append((header, self._text.strip()))
            self._col += 1
            self._in = None
        elif tag == "script" and self._script:
            self.specs.append(json.loads(self._text))
            self._script = False

    def handle_data(self, data: str) -> None:
        if self._in or self._script:
            self._text += data


def _person_count(record: dict[str, Any], key: str) -> bool:
    """Counts of sites, score sums and money are not counts of people (knowdo.report.publish.NOT_PERSON_UNITS)."""
    unit = record.get("denominator_unit") or record.get("unit") if key == "denominator" else record.get("unit")
    return unit not in NOT_PERSON_UNITS


def _small_counts_in_spec(spec: Any, threshold: int) -> list[Any]:
    found = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in COUNT_KEYS and isinstance(value, int | float) and not isinstance(value, bool) \
                    and 0 < value < threshold and _person_count(spec, key):
                found.append((key, value))
            else:
                found += _small_counts_in_spec(value, threshold)
    elif isinstance(spec, list):
        for item in spec:
            found += _small_counts_in_spec(item, threshold)
    return found


def _small_counts_in_cells(cells: list[tuple[str, str]], threshold: int) -> list[tuple[str, str]]:
    out = []
    for header, value in cells:
        if header in COUNT_HEADERS and re.fullmatch(r"[\d,]+(\.\d+)?", value):
            number = float(value.replace(",", ""))
            if 0 < number < threshold:
                out.append((header, value))
    return out


def test_no_disclosure_controlled_view_shows_a_small_count(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        project = load_project(tmp_path / SLUG)
        threshold = project.disclosure_threshold
        # The unsuppressed results do hold small counts, so the check below can fail.
        with Store.for_project(project) as store:
            panel = store.query("SELECT started FROM panel WHERE dimension <> 'all'")
        assert ((panel["started"] > 0) & (panel["started"] < threshold)).any()
        env.sign_in("community_partner")
        page = env.client.get(f"{P}/evidence")
        assert page.status_code == 200
        parsed = _Tables()
        parsed.feed(page.text)
        assert len(parsed.specs) >= 6 and len(parsed.cells) > 200
        assert _small_counts_in_cells(parsed.cells, threshold) == []
        assert _small_counts_in_spec(parsed.specs, threshold) == []
        assert f"&lt;{threshold}" in page.text or "suppressed" in page.text  # some cells were withheld, and marked
        panels = env.client.get(f"/api{P}/evidence").json()
        assert {p["key"] for p in panels} >= {"cascade", "reaim", "equity", "effects"}
        for p in panels:
            assert _small_counts_in_spec([c["spec"] for c in p["charts"]], threshold) == []
            cells = [(t["headers"][i], cell[0]) for t in p["tables"] for row in t["rows"] for i, cell in enumerate(row)]
            assert _small_counts_in_cells(cells, threshold) == []
        # No person identifier reaches a disclosure-controlled view.
        with Store.for_project(project) as store:
            people = store.query("SELECT person_id FROM persons LIMIT 50")["person_id"].astype(str)
        text_all = page.text + json.dumps(panels)
        assert not [pid for pid in people if re.search(rf"\b{re.escape(pid)}\b", text_all)]
        assert "People" not in re.findall(r'aria-label="Project".*?</nav>', page.text, re.S)[0]
