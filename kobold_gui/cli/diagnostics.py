"""--self-test: a JSON report users can attach to bug reports; exit 0 when a reply was
generated. The CPU is checked before llama.cpp is loaded: on a CPU without the instructions
the build needs, loading it can crash the process instead of reporting."""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
from typing import Any

from kobold_gui import __version__
from kobold_gui.cli.parser import CliError
from kobold_gui.core.chats.db import has_fts5
from kobold_gui.core.hardware.cpu import cpu_features, missing_cpu_features


def self_test(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {
        "kobold_gui": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "cpu_features": cpu_features(),
        "sqlite": _sqlite(),
    }
    code = 0
    try:
        missing = missing_cpu_features()
        if missing:
            raise CliError(f"this CPU lacks {', '.join(missing)}, which the llama.cpp build needs")
        from kobold_gui.cli.diagnostics_run import load_and_reply  # loads llama.cpp

        load_and_reply(args, report)
        if not report["ok"]:
            report["error"] = "the model generated no tokens"
            code = 1
    except Exception as e:
        report["ok"] = False
        report["error"] = str(e)
        code = 1
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return code


def _sqlite() -> dict[str, Any]:
    """The SQLite the chat store runs on (the bundle carries its own): without FTS5, chat
    search falls back to a slower scan."""
    conn = sqlite3.connect(":memory:")
    try:
        return {"version": sqlite3.sqlite_version, "fts5": has_fts5(conn)}
    finally:
        conn.close()
