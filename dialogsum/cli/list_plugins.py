"""``dialogsum plugins``: the fine-tuning methods and inference backends that are loaded."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dialogsum.cli.config import add_config_flag


def add_parser(commands: Any) -> None:
    """Add the ``plugins`` command."""
    parser = commands.add_parser("plugins", help="List fine-tuning methods and inference backends.")
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")


def run(args: argparse.Namespace) -> int:
    """Print one row per method and backend: kind, name, where it came from, its options."""
    from dialogsum.registry import get_registry

    registry = get_registry()
    entries: list[tuple[str, Any]] = [
        *(("method", entry) for entry in registry.methods.values()),
        *(("backend", entry) for entry in registry.backends.values()),
    ]
    rows: list[dict[str, Any]] = [
        {
            "kind": kind,
            "name": entry.name,
            "source": entry.source,
            "options": list(entry.obj.Options.model_fields),
            # A backend that can export: its export options (an empty list when it takes none).
            "export_options": _export_options(entry.obj) if kind == "backend" else None,
        }
        for kind, entry in sorted(entries, key=lambda pair: (pair[0] != "method", pair[1].name))
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ("kind", "name", "source", "options", "exports")
    cells: list[tuple[str, ...]] = [
        (
            r["kind"],
            r["name"],
            r["source"],
            ", ".join(r["options"]) or "-",
            _exports_cell(r["export_options"]),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    for line in (headers, tuple("-" * w for w in widths), *cells):
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _export_options(backend: Any) -> list[str] | None:
    """The backend's export options, or None when it cannot export."""
    options = backend.ExportOptions
    return None if options is None else list(options.model_fields)


def _exports_cell(options: list[str] | None) -> str:
    if options is None:
        return "-"
    return "yes: " + (", ".join(options) or "no options")
