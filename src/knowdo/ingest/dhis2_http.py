"""The DHIS2 Web API, read over HTTP: data values, analytics, org units and tracker, page by page.

Thin on purpose: each function asks :class:`~knowdo.ingest.remote.ApiClient`
(retries, timeouts, credentials from the environment or a user-level file)
for one DHIS2 resource and returns the decoded JSON that the file readers in
:mod:`knowdo.ingest.dhis2` already understand, so a live pull and a saved
export go through the same checks. Paged resources are followed to the last
page (``pager.pageCount`` when the server reports it, else until a short
page).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from knowdo.errors import Problem, SchemaError
from knowdo.ingest.remote import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ApiClient, find_credentials

DEFAULT_PAGE_SIZE = 500  # DHIS2 default is 50; 500 keeps requests few without long server-side queries
MAX_PAGES = 100_000  # a guard against a server that never reports its last page


def dhis2_client(
    url: str,
    *,
    env_prefix: str = "KNOWDO_DHIS2",
    project_root: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = 0.5,
) -> ApiClient:
    """A client for the DHIS2 server at ``url`` (its root, or its ``/api`` path)."""
    root = url.rstrip("/")
    if not root.endswith("/api"):
        root = f"{root}/api"
    credentials = find_credentials(url, env_prefix=env_prefix, project_root=project_root)
    return ApiClient(root, credentials=credentials, scheme="dhis2", timeout=timeout, retries=retries,
                     backoff=backoff, env_hint=env_prefix)


def data_value_sets(client: ApiClient, query: Mapping[str, Any]) -> Any:
    """``GET /dataValueSets.json`` (one answer: DHIS2 does not page data value sets)."""
    return client.get_json("dataValueSets.json", query)


def analytics(client: ApiClient, query: Mapping[str, Any]) -> Any:
    return client.get_json("analytics.json", query)


def organisation_units(client: ApiClient, query: Mapping[str, Any] | None = None, *,
                       page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    params = {"fields": "id,name,code,level,path,parent[id],openingDate,closedDate", **(query or {})}
    units = list(paged(client, "organisationUnits.json", "organisationUnits", params, page_size=page_size))
    return {"organisationUnits": units}


def organisation_unit_levels(client: ApiClient) -> Any:
    return client.get_json("filledOrganisationUnitLevels.json")


def tracked_entities(client: ApiClient, query: Mapping[str, Any], *,
                     page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    """``/tracker/trackedEntities`` with enrollments and events (fields=*), all pages."""
    params = {"fields": "*,enrollments[*,events[*]]", **query}
    items = list(paged(client, "tracker/trackedEntities.json", ("trackedEntities", "instances"), params,
                       page_size=page_size))
    return {"trackedEntities": items}


def paged(
    client: ApiClient,
    path: str,
    key: str | tuple[str, ...],
    params: Mapping[str, Any],
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    """Every item of a paged DHIS2 collection, following ``page`` until the last one."""
    keys = (key,) if isinstance(key, str) else key
    for page in range(1, MAX_PAGES + 1):
        body = client.get_json(path, {**params, "page": page, "pageSize": page_size, "totalPages": True})
        where = client.url(path)
        if not isinstance(body, dict):
            raise SchemaError([Problem(where, "dhis2-shape", f"page {page} is not a JSON object")])
        found = next((k for k in keys if k in body), None)
        items = body.get(found) if found else None
        if not isinstance(items, list):
            raise SchemaError([Problem(where, "dhis2-shape",
                                       f"page {page} has no '{keys[0]}' list (keys seen: {', '.join(body)})")])
        yield from (i for i in items if isinstance(i, dict))
        pager = body.get("pager")
        page_count = (pager if isinstance(pager, dict) else body).get("pageCount")
        if isinstance(page_count, int):
            if page >= page_count:
                return
        elif len(items) < page_size or not items:
            return
    raise SchemaError([Problem(client.url(path), "dhis2-paging", f"more than {MAX_PAGES} pages; narrow the query")])
