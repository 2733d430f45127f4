"""ARCHITECTURE.md names every module, so the map cannot silently fall behind the code."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _modules() -> list[str]:
    names = []
    for path in sorted((REPO / "src" / "knowdo").rglob("*.py")):
        parts = path.relative_to(REPO / "src").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") and p != "__main__" for p in parts) or "migrations" in parts:
            continue  # private helpers and generated migrations are described with their package
        names.append(".".join(parts))
    return names


def test_architecture_names_every_module() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [name for name in _modules() if f"`{name}`" not in text]
    assert not missing, f"ARCHITECTURE.md does not mention: {', '.join(missing)}"
