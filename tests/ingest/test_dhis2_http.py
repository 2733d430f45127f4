"""DHIS2 over HTTP: a real server on 127.0.0.1 serves the example payloads, and fails in the ways servers fail.

Checked: token and basic auth reach the server and never come from the project
folder; the project window fills the period; org units are followed across
pages; 401 is reported at once with what to do; 500/429 are retried with
backoff and succeed when the server recovers; persistent 500s, truncated JSON,
a connection cut mid-body and slow answers end as one located problem each.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from ingest_servers import Reply, ScriptedServer

from knowdo.config import Project, parse_project
from knowdo.errors import ConfigError
from knowdo.ingest.canonical import CanonicalFrames
from knowdo.ingest.dhis2 import read_dhis2_source
from knowdo.ingest.dhis2_http import dhis2_client

EXAMPLES = ("domain", "data-standards-examples")


@pytest.fixture
def payloads(shared_dir: Path) -> dict[str, bytes]:
    folder = shared_dir.joinpath(*EXAMPLES)
    return {name: (folder / f"dhis2_{name}.json").read_bytes()
            for name in ("dataValueSets_export", "organisationUnits", "organisationUnitLevels")}


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("KNOWDO_DHIS2"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KNOWDO_CREDENTIALS", str(tmp_path / "absent.toml"))


def _project(root: Path, url: str, **options: object) -> Project:
    source = {"kind": "dhis2-datavalues", "url": url, "mapping": "chis-mental-health", **options}
    return parse_project({"project": {"start": "2024-01-01", "end": "2024-12-31"}, "sources": [source]}, root)


def _serve(server: ScriptedServer, payloads: dict[str, bytes], *values: Reply) -> None:
    server.route("/api/dataValueSets.json", *(values or (Reply(body=payloads["dataValueSets_export"]),)))
    units = json.loads(payloads["organisationUnits"])["organisationUnits"]
    pages = [{"pager": {"page": 1, "pageCount": 2}, "organisationUnits": units[:2]},
             {"pager": {"page": 2, "pageCount": 2}, "organisationUnits": units[2:]}]
    server.route("/api/organisationUnits.json", *(Reply(body=json.dumps(page).encode()) for page in pages))
    server.route("/api/filledOrganisationUnitLevels.json", Reply(body=payloads["organisationUnitLevels"]))


def _read(project: Project, server: ScriptedServer, *, timeout: float = 5.0, retries: int = 2) -> CanonicalFrames:
    source = project.sources[0]
    assert source.url is not None
    client = dhis2_client(source.url, project_root=project.root, timeout=timeout, retries=retries, backoff=0.01)
    with client:
        return read_dhis2_source(source, project, client=client)


def test_token_auth_window_and_paging(payloads: dict[str, bytes], tmp_path: Path, no_credentials: None,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWDO_DHIS2_TOKEN", "d2pat_secret")
    with ScriptedServer() as server:
        _serve(server, payloads)
        frames = _read(_project(tmp_path, server.url, query={"dataSet": "RoS1js1RRjt", "orgUnit": "ImspTQPwCqd",
                                                            "children": True}), server)
        [asked] = server.asked("/api/dataValueSets.json")
        assert asked.headers["Authorization"] == "ApiToken d2pat_secret"
        assert asked.query["startDate"] == ["2024-01-01"] and asked.query["endDate"] == ["2024-12-31"]
        assert asked.query["children"] == ["true"] and asked.query["dataSet"] == ["RoS1js1RRjt"]
        assert [s.query["page"] for s in server.asked("/api/organisationUnits.json")] == [["1"], ["2"]]
    assert frames.errors == []
    assert sorted(frames.tables["sites"]["site_id"]) == ["DiszpKrYNg8", "ImspTQPwCqd", "O6uvpzGd5pu"]
    screened = frames.tables["aggregates"].query("indicator == 'screened' and dimension == 'all'")
    assert screened["value"].tolist() == ["23"]
    assert frames.sha256 is not None


def test_basic_auth_from_user_level_file(payloads: dict[str, bytes], tmp_path: Path, no_credentials: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer() as server:
        _serve(server, payloads)
        secrets = tmp_path / "home" / "credentials.toml"
        secrets.parent.mkdir()
        secrets.write_text(f'["{server.url}"]\nusername = "admin"\npassword = "district"\n')
        secrets.chmod(0o600)
        monkeypatch.setenv("KNOWDO_CREDENTIALS", str(secrets))
        frames = _read(_project(tmp_path / "project", server.url), server)
        [asked] = server.asked("/api/dataValueSets.json")
    assert asked.headers["Authorization"] == "Basic " + base64.b64encode(b"admin:district").decode()
    assert frames.errors == []


def test_credentials_inside_the_project_or_readable_by_others_are_refused(tmp_path: Path, no_credentials: None,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    inside = tmp_path / "credentials.toml"
    inside.write_text('["http://x"]\ntoken = "t"\n')
    inside.chmod(0o600)
    monkeypatch.setenv("KNOWDO_CREDENTIALS", str(inside))
    with pytest.raises(ConfigError, match="inside the project folder"):
        dhis2_client("http://x", project_root=tmp_path)
    outside = tmp_path / "elsewhere" / "c.toml"
    outside.parent.mkdir()
    outside.write_text('["http://x"]\ntoken = "t"\n')
    outside.chmod(0o644)
    monkeypatch.setenv("KNOWDO_CREDENTIALS", str(outside))
    with pytest.raises(ConfigError, match="chmod 600"):
        dhis2_client("http://x", project_root=tmp_path / "project")


def test_secrets_in_the_project_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secrets never go"):
        _project(tmp_path, "http://h", query={"password": "x"})
    with pytest.raises(ConfigError, match="carries a password"):
        _project(tmp_path, "http://admin:district@h")


def test_unauthorised_is_reported_once_with_what_to_do(payloads: dict[str, bytes], tmp_path: Path,
                                                       no_credentials: None) -> None:
    with ScriptedServer() as server:
        _serve(server, payloads, Reply(401, b'{"message":"Unauthorized"}'))
        frames = _read(_project(tmp_path, server.url), server)
        assert len(server.asked("/api/dataValueSets.json")) == 1  # 401 is not retried
    [problem] = frames.problems
    assert problem.rule == "http-401" and problem.file.startswith(f"{server.url}/api/dataValueSets.json?")
    assert "KNOWDO_DHIS2_TOKEN" in problem.message


def test_server_errors_are_retried_until_it_recovers(payloads: dict[str, bytes], tmp_path: Path,
                                                     no_credentials: None) -> None:
    with ScriptedServer() as server:
        _serve(server, payloads, Reply(500, b"{}"), Reply(429, b"{}", headers={"Retry-After": "0"}),
               Reply(body=payloads["dataValueSets_export"]))
        frames = _read(_project(tmp_path, server.url), server)
        assert len(server.asked("/api/dataValueSets.json")) == 3
    assert frames.errors == []


def test_persistent_server_error(payloads: dict[str, bytes], tmp_path: Path, no_credentials: None) -> None:
    with ScriptedServer() as server:
        _serve(server, payloads, Reply(503, b'{"message":"maintenance"}'))
        frames = _read(_project(tmp_path, server.url), server, retries=2)
        assert len(server.asked("/api/dataValueSets.json")) == 3
    [problem] = frames.problems
    assert problem.rule == "http-503" and "after 3 attempt(s)" in problem.message and "maintenance" in problem.message


@pytest.mark.parametrize(("reply", "rule"), [
    (Reply(body=b'{"dataValues": [{"dataElement": "vXiy7'), "bad-json"),
    (Reply(body=b'{"dataValues": []}' * 3, cut=True), "http-connection"),
    (Reply(body=b"{}", delay=1.0), "http-timeout"),
])
def test_broken_answers_become_one_located_problem(reply: Reply, rule: str, payloads: dict[str, bytes],
                                                   tmp_path: Path, no_credentials: None) -> None:
    with ScriptedServer() as server:
        _serve(server, payloads, reply)
        frames = _read(_project(tmp_path, server.url), server, timeout=0.3, retries=1)
    [problem] = frames.problems
    assert problem.rule == rule and server.url in problem.file


def test_tracker_pages_until_a_short_page(shared_dir: Path, tmp_path: Path, no_credentials: None) -> None:
    folder = shared_dir.joinpath(*EXAMPLES)
    body = json.loads((folder / "dhis2_tracker_trackedEntities_nested.json").read_text())
    entity = body["trackedEntities"][0]
    with ScriptedServer() as server:
        # without pageCount, a page shorter than pageSize (here the empty second one) is the last
        pages = [{"pager": {"page": 1, "pageSize": 1}, "trackedEntities": [entity]},
                 {"pager": {"page": 2, "pageSize": 1}, "trackedEntities": []}]
        server.route("/api/tracker/trackedEntities.json", *(Reply(body=json.dumps(p).encode()) for p in pages))
        source = {"kind": "dhis2-tracker", "url": server.url, "org_units": False, "page_size": 1,
                  "query": {"program": "MhGapProg01"}, "mapping": {"instruments": {"MhPhq9Total": "PHQ-9"}}}
        project = parse_project({"project": {"start": "2024-01-01", "end": "2024-12-31"}, "sources": [source]},
                                tmp_path)
        client = dhis2_client(server.url, project_root=tmp_path, retries=0)
        with client:
            frames = read_dhis2_source(project.sources[0], project, client=client)
        asked = server.asked("/api/tracker/trackedEntities.json")
    assert [s.query["page"] for s in asked] == [["1"], ["2"]] and asked[0].query["program"] == ["MhGapProg01"]
    assert frames.errors == [] and frames.tables["measures"]["total"].tolist() == ["17", "9"]
