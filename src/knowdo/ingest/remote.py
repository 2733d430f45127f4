"""A careful HTTP client for health-system APIs: credentials kept out of projects, retries, timeouts.

Every live connector (DHIS2, FHIR Bulk Data, REDCap) reads through
:class:`ApiClient`, built on ``httpx``. It

* finds credentials in environment variables (``<PREFIX>_TOKEN``, or
  ``<PREFIX>_USERNAME`` and ``<PREFIX>_PASSWORD``) or in a user-level file
  (``$KNOWDO_CREDENTIALS``, else ``~/.config/knowdo/credentials.toml``) keyed
  by server URL, and refuses a credentials file inside the project folder or
  readable by other users, so secrets never travel with a project;
* retries connection failures, timeouts and the statuses a busy server sends
  (429, 500, 502, 503, 504) with exponential backoff, honouring
  ``Retry-After``; it does not retry other 4xx answers, which will not change;
* turns every failure into a :class:`~knowdo.errors.SchemaError` carrying one
  :class:`~knowdo.errors.Problem` that names the URL, what went wrong and what
  to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from knowdo import __version__
from knowdo.errors import ConfigError, Problem, SchemaError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # transient by RFC 9110 / common gateway practice
DEFAULT_TIMEOUT = 30.0  # seconds per request; DHIS2 analytics on a national instance can take ~10 s
DEFAULT_RETRIES = 3  # attempts after the first
DEFAULT_BACKOFF = 0.5  # seconds, doubled at each retry (0.5, 1, 2)
MAX_RETRY_AFTER = 60.0  # never wait longer than this on a server's Retry-After

AuthScheme = Literal["dhis2", "bearer", "form-token", "none"]


@dataclass(frozen=True)
class Credentials:
    """A token, or a user name and password (never printed: ``repr`` hides them)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    found_in: str = "nowhere"

    def __repr__(self) -> str:
        kind = "token" if self.token else ("basic" if self.username else "none")
        return f"Credentials({kind}, from {self.found_in})"

    @property
    def empty(self) -> bool:
        return not self.token and not (self.username and self.password)


def credentials_file() -> Path:
    explicit = os.environ.get("KNOWDO_CREDENTIALS")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "knowdo" / "credentials.toml"


def find_credentials(url: str, *, env_prefix: str, project_root: Path | None = None) -> Credentials:
    """Credentials for ``url``: environment variables first, then the user-level credentials file.

    The file maps server URLs to ``token`` or ``username``/``password``::

        ["https://dhis2.example.org"]
        token = "d2pat_..."

    The longest URL prefix matching ``url`` wins.
    """
    token = os.environ.get(f"{env_prefix}_TOKEN")
    username = os.environ.get(f"{env_prefix}_USERNAME")
    password = os.environ.get(f"{env_prefix}_PASSWORD")
    if token or (username and password):
        return Credentials(token or None, username, password, found_in=f"environment ({env_prefix}_*)")
    file = credentials_file()
    if not file.is_file():
        return Credentials()
    resolved = file.resolve()
    if project_root is not None and resolved.is_relative_to(project_root.resolve()):
        raise ConfigError(
            f"{file}: a credentials file inside the project folder would travel with the project; "
            f"move it to {Path.home() / '.config' / 'knowdo' / 'credentials.toml'} or use {env_prefix}_TOKEN"
        )
    if os.name == "posix" and resolved.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{file}: readable by other users; run `chmod 600 {file}` first")
    try:
        table = tomllib.loads(resolved.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    matches = [key for key in table if isinstance(table[key], dict) and url.startswith(key.rstrip("/"))]
    if not matches:
        return Credentials()
    entry = table[max(matches, key=len)]
    return Credentials(entry.get("token"), entry.get("username"), entry.get("password"), found_in=str(file))


class ApiClient:
    """GET/POST JSON or bytes from one server, with retries and readable failures.

    Parameters
    ----------
    base_url
        Server root (``https://dhis2.example.org`` or ``.../api``); relative
        paths are joined to it.
    credentials
        What :func:`find_credentials` returned.
    scheme
        ``"dhis2"`` sends a token as ``Authorization: ApiToken``, ``"bearer"``
        as ``Authorization: Bearer``, ``"form-token"`` as a ``token`` form field
        (REDCap); a user name and password go as HTTP basic auth.
    """

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        scheme: AuthScheme = "dhis2",
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        env_hint: str = "KNOWDO_DHIS2",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or Credentials()
        self.scheme = scheme
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.env_hint = env_hint
        headers = {"Accept": "application/json", "User-Agent": f"knowdo/{__version__}"}
        auth: httpx.Auth | None = None
        if self.credentials.token and scheme == "dhis2":
            headers["Authorization"] = f"ApiToken {self.credentials.token}"
        elif self.credentials.token and scheme == "bearer":
            headers["Authorization"] = f"Bearer {self.credentials.token}"
        elif self.credentials.username and self.credentials.password:
            auth = httpx.BasicAuth(self.credentials.username, self.credentials.password)
        self._http = httpx.Client(headers=headers, auth=auth, timeout=timeout, transport=transport,
                                  follow_redirects=True)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    # ------------------------------------------------------------------ requests
    def get(self, path: str, params: Mapping[str, Any] | None = None, *,
            headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self._send("GET", self.url(path), params=params, headers=headers)

    def post_form(self, path: str, data: Mapping[str, str]) -> httpx.Response:
        form = dict(data)
        if self.scheme == "form-token" and self.credentials.token:
            form["token"] = self.credentials.token
        return self._send("POST", self.url(path), data=form)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self.get(path, params)
        return parse_json(response.content, shown_url(response.request.url))

    def _send(
        self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        shown = shown_url(httpx.URL(url, params=_params(params)))
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, url, params=_params(params), data=data, headers=headers)
            except httpx.TimeoutException:
                if last:
                    raise _failure(shown, "http-timeout",
                                   f"no complete answer within {self.timeout:g} s after {attempt + 1} attempt(s); "
                                   "narrow the query (fewer periods or org units) or raise the source's timeout") \
                        from None
                self._wait(attempt, None)
                continue
            except httpx.TransportError as exc:
                if last:
                    raise _failure(shown, "http-connection",
                                   f"the connection failed after {attempt + 1} attempt(s) ({type(exc).__name__}: "
                                   f"{exc}); check the URL and that the server is reachable") from None
                self._wait(attempt, None)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self._wait(attempt, response.headers.get("Retry-After"))
                continue
            if response.status_code in (401, 403):
                raise _failure(shown, f"http-{response.status_code}",
                               f"the server refused access ({response.status_code} {response.reason_phrase}); "
                               f"{self._auth_hint()}")
            if response.status_code >= 400:
                raise _failure(shown, f"http-{response.status_code}",
                               f"the server answered {response.status_code} {response.reason_phrase}"
                               + (f" after {attempt + 1} attempt(s)" if response.status_code in RETRY_STATUSES else "")
                               + f": {_brief(response)}")
            return response
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _auth_hint(self) -> str:
        if self.credentials.empty:
            return (f"no credentials were found: set {self.env_hint}_TOKEN (or {self.env_hint}_USERNAME and "
                    f"{self.env_hint}_PASSWORD), or add the server to {credentials_file()}")
        return f"check the credentials from {self.credentials.found_in} and the account's access to this resource"

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2**attempt)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = min(float(retry_after), MAX_RETRY_AFTER)
        time.sleep(delay)


def _params(params: Mapping[str, Any] | None) -> list[tuple[str, str | int | float | bool | None]] | None:
    if params is None:
        return None
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            out.append((key, "true" if v is True else "false" if v is False else str(v)))
    return out


def shown_url(url: httpx.URL) -> str:
    """The URL as messages show it: no user info, no token parameter."""
    clean = url.copy_with(username=None, password=None) if url.userinfo else url
    params = [(k, "***" if k.lower() in {"token", "access_token", "api_key"} else v)
              for k, v in clean.params.multi_items()]
    return str(clean.copy_with(params=params or None))


def parse_json(content: bytes, where: str) -> Any:
    try:
        return json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        position = getattr(exc, "pos", None)
        at = f" at character {position}" if position is not None else ""
        message = f"the answer is not valid JSON{at} ({len(content)} bytes; truncated or not JSON): {exc}"
        raise _failure(where, "bad-json", message) from None


def _brief(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])[:200]
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    return response.text[:200].strip() or "(empty body)"


def _failure(where: str, rule: str, message: str) -> SchemaError:
    return SchemaError([Problem(where, rule, message)])
