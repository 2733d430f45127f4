"""How charts reach the page: Vega-Lite specifications, cleaned, and the libraries that draw them.

Each chart becomes its Vega-Lite specification with the disclosure rule
applied to its inline data (:func:`chart_spec`), serialised so it can sit in
a ``<script type="application/json">`` element. The Vega, Vega-Lite and
Vega-Embed JavaScript comes from ``vl-convert-python`` as one bundle,
inlined once per page, so the report needs no network.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import altair as alt
import vl_convert

from knowdo.errors import ParameterError
from knowdo.report.publish import SUPPRESSED, frame_records, is_record_list, jsonable, records_frame, suppress_frame

# Makes the three libraries globals for the page's own script.
BUNDLE_SNIPPET = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"
# The look shared by every chart (vega-embed merges it into each specification's config).
CHART_THEME: dict[str, Any] = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
    "background": "#ffffff",
    "view": {"stroke": "#e5e7eb"},
    "axis": {
        "labelColor": "#374151",
        "titleColor": "#1f2937",
        "gridColor": "#eceff3",
        "domainColor": "#9ca3af",
        "tickColor": "#9ca3af",
        "labelFontSize": 12,
        "titleFontSize": 12,
    },
    "legend": {"labelColor": "#374151", "titleColor": "#1f2937", "labelFontSize": 12},
    "title": {"color": "#111827", "subtitleColor": "#4b5563", "fontSize": 15, "subtitleFontSize": 12},
    "header": {"labelColor": "#1f2937", "labelFontSize": 12},
    "range": {"category": ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]},
}


def chart_spec(chart: alt.TopLevelMixin | Mapping[str, Any], *, threshold: int, rounding: int | None = None) -> dict:
    """A chart's Vega-Lite specification with small cells suppressed in its data.

    Inline data (``datasets`` and ``data.values``) are passed through the
    disclosure rule. In a suppressed record every count, every estimate and
    every other fractional number is blanked, so figures derived from a small
    count under another name do not reach the page either.
    """
    # Schema validation is skipped: on charts carrying thousands of rows it costs seconds, and the
    # builders' specifications are compiled against the schema in the tests.
    if isinstance(chart, alt.TopLevelMixin):
        # a report inlines its data on purpose (it must work offline), so Altair's 5,000-row guard does not apply
        with alt.data_transformers.disable_max_rows():
            spec = chart.to_dict(validate=False)
    else:
        spec = json.loads(json.dumps(chart, default=jsonable))
    if "$schema" not in spec:
        spec["$schema"] = alt.SCHEMA_URL
    if "vega-lite" not in str(spec["$schema"]):
        raise ParameterError(f"chart_spec: expected a Vega-Lite specification, saw $schema {spec['$schema']!r}")
    cleaned = _clean_spec(spec, threshold, rounding)
    assert isinstance(cleaned, dict)
    return cleaned


def _clean_spec(value: Any, threshold: int, rounding: int | None) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if key == "datasets" and isinstance(item, Mapping):
                out[key] = {name: _clean_values(rows, threshold, rounding) for name, rows in item.items()}
            elif key == "values" and isinstance(item, list):
                out[key] = _clean_values(item, threshold, rounding)
            else:
                out[key] = _clean_spec(item, threshold, rounding)
        return out
    if isinstance(value, list):
        return [_clean_spec(v, threshold, rounding) for v in value]
    return jsonable(value)


def _clean_values(rows: Any, threshold: int, rounding: int | None) -> Any:
    if not is_record_list(rows):
        return jsonable_tree(rows)
    done = suppress_frame(records_frame(rows), threshold=threshold, rounding=rounding).frame
    records = frame_records(done)
    for record in records:
        if record.get(SUPPRESSED):
            for key, value in record.items():
                if isinstance(value, float):
                    record[key] = None
    return records


def count_suppressed(spec: Any) -> int:
    """How many records in a cleaned specification's inline data are marked suppressed."""
    if isinstance(spec, Mapping):
        total = 0
        for key, item in spec.items():
            if key == "datasets" and isinstance(item, Mapping):
                total += sum(count_suppressed({"values": rows}) for rows in item.values())
            elif key == "values" and isinstance(item, list):
                total += sum(1 for r in item if isinstance(r, Mapping) and r.get(SUPPRESSED) is True)
            else:
                total += count_suppressed(item)
        return total
    if isinstance(spec, list):
        return sum(count_suppressed(v) for v in spec)
    return 0


def jsonable_tree(value: Any) -> Any:
    """A JSON-ready copy of nested lists and mappings (non-finite numbers become ``None``)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable_tree(v) for v in value]
    return jsonable(value)


def json_for_script(value: Any) -> str:
    """JSON that can sit inside a <script> element: '<', '>' and '&' are escaped as unicode."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def script_safe(code: str) -> str:
    return code.replace("</script", "<\\/script").replace("<!--", "<\\!--")


@functools.cache
def javascript_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script, matched to the Vega-Lite version Altair writes."""
    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    available = vl_convert.get_vegalite_versions()
    version = wanted if wanted in available else None
    return str(vl_convert.javascript_bundle(BUNDLE_SNIPPET, vl_version=version))
