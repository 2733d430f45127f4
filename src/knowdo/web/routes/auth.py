"""Sign-in, sign-out, invitations, the account page, API tokens and the project list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from knowdo.errors import KnowdoError
from knowdo.report.embed import javascript_bundle
from knowdo.web import services
from knowdo.web.models import ApiToken, Membership, User, utcnow
from knowdo.web.routes.deps import Caller, access, client_of, render, safe_next, state_of
from knowdo.web.security import (
    HASHER,
    audit,
    check_password_rules,
    clear_failures,
    create_api_token,
    create_user,
    end_all_sessions,
    end_session,
    hash_password,
    login_blocked,
    new_token,
    record_failure,
    start_session,
    verify_password,
)

router = APIRouter()
Access = Annotated[Caller, Depends(access)]
# A valid hash to verify against when the account does not exist, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = HASHER.hash("knowdo-timing-equaliser-password")


def _set_session_cookie(request: Request, response: Response, token: str, expires: dt.datetime) -> None:
    settings = state_of(request).settings
    seconds = int((expires - utcnow()).total_seconds())
    response.set_cookie(settings.session_cookie, token, max_age=seconds, path="/", secure=settings.cookie_secure,
                        httponly=True, samesite="lax")
    response.delete_cookie(settings.presession_cookie, path="/", secure=settings.cookie_secure, httponly=True,
                           samesite="lax")


def _presession(request: Request, response: Response, token: str) -> None:
    settings = state_of(request).settings
    if request.cookies.get(settings.presession_cookie) != token:
        response.set_cookie(settings.presession_cookie, token, max_age=3600, path="/", secure=settings.cookie_secure,
                            httponly=True, samesite="lax")


@router.get("/healthz", name="health", include_in_schema=False)
def health(caller: Access) -> dict[str, str]:
    return {"status": "ok"}


@router.get("/assets/vega.js", name="vega_bundle", include_in_schema=False)
def vega_bundle(caller: Access) -> Response:
    """Vega, Vega-Lite and Vega-Embed (from vl-convert), cached by browsers for a year: the URL carries the version."""
    return Response(javascript_bundle(), media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.get("/", name="home", include_in_schema=False)
def home(caller: Access) -> RedirectResponse:
    return RedirectResponse("/projects", status_code=303)


@router.get("/login", name="login_form", include_in_schema=False)
def login_form(request: Request, caller: Access, next: str = "") -> Response:
    token = caller.csrf if caller.signed_in else (caller.csrf or new_token())
    response = render(request, caller, "login.html", {"next": safe_next(next, "/projects"), "error": "",
                                                      "csrf": token, "email": ""})
    if not caller.signed_in:
        _presession(request, response, token)
    return response


@router.post("/login", name="login", include_in_schema=False)
def login(request: Request, caller: Access, email: Annotated[str, Form(max_length=254)] = "",
          password: Annotated[str, Form(max_length=1024)] = "",
          next: Annotated[str, Form(max_length=500)] = "") -> Response:
    web = state_of(request)
    client = client_of(request)
    target = safe_next(next, "/projects")
    email = email.strip().lower()
    with web.db.session() as s:
        wait = login_blocked(s, email, client, web.settings)
        if wait:
            response = render(request, caller, "login.html", {
                "next": target, "csrf": caller.csrf, "email": email,
                "error": f"Too many failed sign-ins. Try again in {max(1, wait // 60)} minute(s)."}, status=429)
            response.headers["Retry-After"] = str(wait)
            return response
        user = s.scalar(select(User).where(User.email == email))
        ok = verify_password(user.password_hash if user else _DUMMY_HASH, password) and user is not None
        if not ok or user is None or user.disabled:
            record_failure(s, email, client, web.settings)
            audit(s, action="login.failed", user=None, target=email[:200], client=client)
            s.commit()
            return render(request, caller, "login.html", {"next": target, "csrf": caller.csrf, "email": email,
                                                          "error": "The e-mail or the password is not right."},
                          status=401)
        clear_failures(s, email)
        if HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = HASHER.hash(password)
        old = request.cookies.get(web.settings.session_cookie)
        issued = start_session(s, user, web.settings, client=client, replacing=old)
        audit(s, action="login", user=user, client=client)
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, issued.token, issued.expires_at)
    return response


@router.post("/logout", name="logout", include_in_schema=False)
def logout(request: Request, caller: Access) -> Response:
    web = state_of(request)
    with web.db.session() as s:
        end_session(s, request.cookies.get(web.settings.session_cookie, ""))
        audit(s, action="logout", user=caller.user, client=client_of(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(web.settings.session_cookie, path="/", secure=web.settings.cookie_secure, httponly=True,
                           samesite="lax")
    return response


@router.post("/logout/everywhere", name="logout_everywhere", include_in_schema=False)
def logout_everywhere(request: Request, caller: Access) -> Response:
    web = state_of(request)
    assert caller.user is not None
    with web.db.session() as s:
        ended = end_all_sessions(s, caller.user.id)
        audit(s, action="logout.everywhere", user=caller.user, detail={"sessions": ended}, client=client_of(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(web.settings.session_cookie, path="/", secure=web.settings.cookie_secure, httponly=True,
                           samesite="lax")
    return response


@router.get("/invite/{token}", name="invitation_form", include_in_schema=False)
def invitation_form(request: Request, caller: Access, token: str) -> Response:
    web = state_of(request)
    with web.db.session() as s:
        invitation = services.open_invitation(s, token)
        project = s.get(services.Project, invitation.project_id) if invitation else None
        exists = invitation is not None and s.scalar(select(User.id).where(User.email == invitation.email)) is not None
    if invitation is None or project is None:
        return render(request, caller, "error.html", {"status": 404, "message":
                      "This invitation link is not valid: it was used already, it expired, or it was mistyped."},
                      status=404)
    csrf = caller.csrf or new_token()
    response = render(request, caller, "invitation.html", {"invitation": invitation, "project": project,
                                                           "exists": exists, "csrf": csrf, "error": ""})
    if not caller.signed_in:
        _presession(request, response, csrf)
    return response


@router.post("/invite/{token}", name="invitation_accept", include_in_schema=False)
def invitation_accept(request: Request, caller: Access, token: str, name: Annotated[str, Form(max_length=200)] = "",
                      password: Annotated[str, Form(max_length=1024)] = "",
                      confirm: Annotated[str, Form(max_length=1024)] = "") -> Response:
    web = state_of(request)
    client = client_of(request)
    with web.db.session() as s:
        invitation = services.open_invitation(s, token)
        if invitation is None:
            return render(request, caller, "error.html", {"status": 404, "message":
                          "This invitation link is not valid any more."}, status=404)
        project = s.get(services.Project, invitation.project_id)
        user = s.scalar(select(User).where(User.email == invitation.email))
        error = ""
        if user is None:
            if password != confirm:
                error = "The two passwords differ."
            else:
                try:
                    user = create_user(s, email=invitation.email, name=name, password=password)
                except KnowdoError as exc:
                    error = str(exc)
        elif not verify_password(user.password_hash, password):
            error = "That is not the password of the existing account for this e-mail."
        if error or user is None:
            s.rollback()
            return render(request, caller, "invitation.html", {
                "invitation": invitation, "project": project, "exists": user is not None, "csrf": caller.csrf,
                "error": error}, status=400)
        if services.role_of(s, user.id, invitation.project_id) is None:
            s.add(Membership(user_id=user.id, project_id=invitation.project_id, role=invitation.role))
        invitation.accepted_at = utcnow()
        issued = start_session(s, user, web.settings, client=client,
                               replacing=request.cookies.get(web.settings.session_cookie))
        audit(s, action="invitation.accepted", user=user, project_id=invitation.project_id,
              detail={"role": invitation.role}, client=client)
        slug = project.slug if project else ""
    response = RedirectResponse(f"/projects/{slug}", status_code=303)
    _set_session_cookie(request, response, issued.token, issued.expires_at)
    return response


def _account(request: Request, caller: Caller, *, message: str = "", error: str = "", secret: str = "",
             status: int = 200) -> Response:
    web = state_of(request)
    assert caller.user is not None
    with web.db.session() as s:
        tokens = s.scalars(select(ApiToken).where(ApiToken.user_id == caller.user.id).order_by(ApiToken.id)).all()
    return render(request, caller, "account.html", {"tokens": tokens, "message": message, "error": error,
                                                    "secret": secret}, status=status)


@router.get("/account", name="account", include_in_schema=False)
def account(request: Request, caller: Access) -> Response:
    return _account(request, caller)


@router.post("/account/password", name="account_password", include_in_schema=False)
def account_password(request: Request, caller: Access, current: Annotated[str, Form(max_length=1024)] = "",
                     new: Annotated[str, Form(max_length=1024)] = "",
                     confirm: Annotated[str, Form(max_length=1024)] = "") -> Response:
    web = state_of(request)
    assert caller.user is not None
    if new != confirm:
        return _account(request, caller, error="The two new passwords differ.", status=400)
    try:
        check_password_rules(new)
    except KnowdoError as exc:
        return _account(request, caller, error=str(exc), status=400)
    with web.db.session() as s:
        user = s.get(User, caller.user.id)
        assert user is not None
        if not verify_password(user.password_hash, current):
            return _account(request, caller, error="The current password is not right.", status=400)
        user.password_hash = hash_password(new)
        # A new password signs out every other browser (someone may have known the old one).
        end_all_sessions(s, user.id)
        issued = start_session(s, user, web.settings, client=client_of(request))
        audit(s, action="password.changed", user=user, client=client_of(request))
    response = RedirectResponse("/account", status_code=303)
    _set_session_cookie(request, response, issued.token, issued.expires_at)
    return response


@router.post("/account/tokens", name="token_create", include_in_schema=False)
def token_create(request: Request, caller: Access, name: Annotated[str, Form(max_length=100)] = "") -> Response:
    web = state_of(request)
    assert caller.user is not None
    try:
        with web.db.session() as s:
            user = s.get(User, caller.user.id)
            assert user is not None
            token, secret = create_api_token(s, user, name)
            audit(s, action="token.created", user=user, target=token.prefix, client=client_of(request))
    except KnowdoError as exc:
        return _account(request, caller, error=str(exc), status=400)
    return _account(request, caller, secret=secret, message=f"Token {name!r} created. Copy it now: it is shown "
                    "only once.", status=201)


@router.post("/account/tokens/{token_id}/revoke", name="token_revoke", include_in_schema=False)
def token_revoke(request: Request, caller: Access, token_id: int) -> Response:
    web = state_of(request)
    assert caller.user is not None
    with web.db.session() as s:
        token = s.get(ApiToken, token_id)
        if token is None or token.user_id != caller.user.id:
            return _account(request, caller, error="No such token.", status=404)
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            audit(s, action="token.revoked", user=caller.user, target=token.prefix, client=client_of(request))
    return RedirectResponse("/account", status_code=303)


def _project_list(request: Request, caller: Caller, *, error: str = "", status: int = 200) -> Response:
    web = state_of(request)
    assert caller.user is not None
    with web.db.session() as s:
        user = s.get(User, caller.user.id)
        assert user is not None
        rows = services.projects_for(s, user)
    return render(request, caller, "projects.html", {"projects": rows, "error": error,
                                                     "today": dt.date.today()}, status=status)


@router.get("/projects", name="project_list", include_in_schema=False)
def project_list(request: Request, caller: Access) -> Response:
    return _project_list(request, caller)


@router.post("/projects", name="project_create", include_in_schema=False)
def project_create(request: Request, caller: Access, name: Annotated[str, Form(max_length=200)] = "",
                   start: Annotated[str, Form(max_length=10)] = "", end: Annotated[str, Form(max_length=10)] = "",
                   threshold: Annotated[int, Form(ge=1, le=1000)] = 11) -> Response:
    web = state_of(request)
    assert caller.user is not None
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError:
        return _project_list(request, caller, error="Give the start and end as dates (YYYY-MM-DD).", status=400)
    try:
        with web.db.session() as s:
            owner = s.get(User, caller.user.id)
            assert owner is not None
            project = services.create_project(s, web.settings.workspace, name=name, start=first, end=last,
                                              threshold=threshold, owner=owner)
            audit(s, action="project.created", user=owner, project_id=project.id, target=project.slug,
                  client=client_of(request))
            slug = project.slug
    except KnowdoError as exc:
        return _project_list(request, caller, error=str(exc), status=400)
    return RedirectResponse(f"/projects/{slug}/members", status_code=303)
