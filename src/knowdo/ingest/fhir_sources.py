"""Read FHIR sources: Bundle files and folders, Bulk Data exports, and FHIR servers.

A ``fhir-bundle`` source is a Bundle file, a folder of Bundles (Synthea
writes one per patient) or a FHIR search URL whose ``next`` links are
followed; a ``fhir-bulk`` source is a Bulk Data export folder
(``manifest.json`` and ndjson files, counts checked against the manifest) or
a server: a manifest URL, or a ``$export`` URL that is kicked off with
``Prefer: respond-async`` and polled until the manifest is ready. ndjson is
streamed line by line. The resources then go to :mod:`knowdo.ingest.fhir`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from knowdo.config import Project, Source
from knowdo.errors import ConfigError, Problem, SchemaError
from knowdo.ingest.canonical import CanonicalFrames, sha256_bytes, sha256_files
from knowdo.ingest.fhir import (
    ITEM_CODES,
    TOTAL_CODES,
    Resources,
    canonical_tables,
    collect_bundle,
    collect_ndjson,
    validate_models,
)
from knowdo.ingest.mapping import load_mapping
from knowdo.ingest.remote import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ApiClient, find_credentials, parse_json


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def read_fhir_source(source: Source, project: Project, *, client: ApiClient | None = None) -> CanonicalFrames:
    """Read a ``fhir-bundle`` or ``fhir-bulk`` source (a file, a folder, or a server) into canonical frames.

    ``validate = "full"`` (Bundles) or ``"fields"`` (Bulk) picks the path
    described in the module docstring.
    """
    out = CanonicalFrames(source.location)
    try:
        mapping = load_mapping(source.mapping, project.root)
    except ConfigError as exc:
        out.problem("mapping", str(exc))
        return out
    default = "full" if source.kind == "fhir-bundle" else "fields"
    mode = source.options.get("validate", default)
    if mode not in ("full", "fields"):
        out.problem("mapping", f"validate must be 'full' or 'fields', saw {mode!r}", column="validate")
        return out
    codes = frozenset({*TOTAL_CODES, *ITEM_CODES, *mapping.instruments})
    resources = Resources(out=out, score_codes=codes, keep_observations=mode == "full")
    try:
        if source.url:
            _fetch(source, project, resources, out, client)
        elif source.kind == "fhir-bulk":
            _read_bulk_folder(source.path, resources, out)
        else:
            _read_bundle_files(source.path, resources, out)
    except SchemaError as exc:
        out.problems.extend(exc.problems)
        return out
    if mode == "full":
        validate_models(resources, out)
    out.tables.update(canonical_tables(resources, mapping, project, out))
    return out


def _read_bundle_files(path: Path, resources: Resources, out: CanonicalFrames) -> None:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        out.problem("file-missing", f"no FHIR Bundle file at {path}")
        return
    for file in files:
        try:
            bundle = json.loads(file.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            out.problem("bad-json", f"not valid JSON (truncated or not JSON): {exc}", record=file.name)
            continue
        collect_bundle(bundle, file.name, resources, out)
    out.sha256 = sha256_files(files)


def _read_bulk_folder(path: Path, resources: Resources, out: CanonicalFrames) -> None:
    folder = path if path.is_dir() else path.parent
    manifest_file = path if path.is_file() else folder / "manifest.json"
    if manifest_file.is_file():
        try:
            manifest = json.loads(manifest_file.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            out.problem("bad-json", f"the manifest is not valid JSON: {exc}", record=manifest_file.name)
            return
        entries = _manifest_outputs(manifest, manifest_file.name, out)
        files = []
        for kind, url, count in entries:
            file = folder / url.rsplit("/", 1)[-1]
            if not file.is_file():
                out.problem("file-missing", f"the manifest lists {url} but {file.name} is not in the folder",
                            record=manifest_file.name)
                continue
            files.append(file)
            with file.open("rb") as handle:
                read = collect_ndjson(handle, file.name, resources, out)
            if count is not None and read != count:
                out.problem("bulk-count", f"the manifest says {count} {kind} resource(s), the file holds {read}",
                            record=file.name, severity="warning")
        out.sha256 = sha256_files([manifest_file, *files])
        return
    files = sorted(folder.glob("*.ndjson"))
    if not files:
        out.problem("file-missing", f"no manifest.json and no .ndjson files in {folder}")
        return
    for file in files:
        with file.open("rb") as handle:
            collect_ndjson(handle, file.name, resources, out)
    out.sha256 = sha256_files(files)


def _manifest_outputs(manifest: Any, where: str, out: CanonicalFrames) -> list[tuple[str, str, int | None]]:
    outputs = manifest.get("output") if isinstance(manifest, dict) else None
    if not isinstance(outputs, list):
        out.problem("fhir-shape", "a Bulk Data manifest has an 'output' list", record=where, column="output")
        return []
    for error in _items(manifest.get("error")):
        if isinstance(error, dict):
            out.problem("bulk-error-file", "the export reported errors (OperationOutcome ndjson); some resources "
                        "may be missing", record=where, value=error.get("url"), severity="warning")
    entries = []
    for i, item in enumerate(outputs):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            out.problem("fhir-shape", "each manifest output needs a url", record=f"{where} output[{i}]")
            continue
        count = item.get("count")
        entries.append((str(item.get("type")), item["url"], count if isinstance(count, int) else None))
    return entries


def _fetch(source: Source, project: Project, resources: Resources, out: CanonicalFrames,
           client: ApiClient | None) -> None:
    assert source.url is not None
    options = source.options
    own = client is None
    if client is None:
        credentials = find_credentials(source.url, env_prefix=str(options.get("auth_env", "KNOWDO_FHIR")),
                                       project_root=project.root)
        client = ApiClient(source.url, credentials=credentials, scheme="bearer",
                           timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
                           retries=int(options.get("retries", DEFAULT_RETRIES)),
                           env_hint=str(options.get("auth_env", "KNOWDO_FHIR")))
    digest: list[bytes] = []
    try:
        if source.kind == "fhir-bulk":
            manifest = _bulk_manifest(client, source.url)
            for _, file_url, _count in _manifest_outputs(manifest, source.url, out):
                response = client.get(file_url)
                digest.append(response.content)
                collect_ndjson(response.content, file_url, resources, out)
        else:
            page_url: str | None = source.url
            pages = 0
            while page_url and pages < 10_000:
                response = client.get(page_url)
                digest.append(response.content)
                bundle = parse_json(response.content, page_url)
                collect_bundle(bundle, page_url, resources, out)
                links = bundle.get("link") if isinstance(bundle, dict) else None
                page_url = next((str(x["url"]) for x in _items(links)
                                 if isinstance(x, dict) and x.get("relation") == "next" and x.get("url")), None)
                pages += 1
    finally:
        if own:
            client.close()
    out.sha256 = sha256_bytes(b"".join(digest))


def _bulk_manifest(client: ApiClient, url: str, *, poll_seconds: float = 2.0, max_polls: int = 900) -> Any:
    """A Bulk Data manifest: fetched directly, or by kicking off ``$export`` and polling its status URL."""
    if "$export" not in url:
        return client.get_json(url)
    response = client.get(url, headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
    status_url = response.headers.get("Content-Location")
    if response.status_code != 202 or not status_url:
        return parse_json(response.content, url)
    for _ in range(max_polls):
        polled = client.get(status_url)
        if polled.status_code == 200:
            return parse_json(polled.content, status_url)
        time.sleep(min(float(polled.headers.get("Retry-After", poll_seconds)), 60.0))
    raise SchemaError([Problem(status_url, "bulk-timeout", f"the export was not ready after {max_polls} polls")])


