"""The matplotlib drawing: a real PNG, and an SVG with one bar per started node."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from taskloom.gantt import write_gantt

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_png(tmp_path: Path, run_json: dict[str, Any]) -> None:
    path = tmp_path / "run.png"
    write_gantt(run_json, path)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_svg_has_one_bar_per_started_node(tmp_path: Path, run_json: dict[str, Any]) -> None:
    path = tmp_path / "run.svg"
    write_gantt(run_json, path)
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    bars = sorted(
        element.get("id", "").removeprefix("node:")
        for element in root.iter()
        if element.get("id", "").startswith("node:")
    )
    assert bars == sorted(set(run_json["nodes"]) - {"blocked"})
    text = path.read_text()
    assert "plan1/1" in text and "towns" in text  # labels and title are text, not paths
