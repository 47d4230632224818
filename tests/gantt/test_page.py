"""The HTML page: one self-contained file (nothing fetched from anywhere), an inline SVG
with one bar per started node, and a table of every node."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from taskloom.gantt import write_gantt
from taskloom.orchestrator.draw import UnknownFormat


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _page(tmp_path: Path, run: dict[str, Any]) -> str:
    path = tmp_path / "run.html"
    write_gantt(run, path)
    return path.read_text(encoding="utf-8")


def test_the_page_references_nothing_outside_itself(
    tmp_path: Path, run_json: dict[str, Any]
) -> None:
    page = _page(tmp_path, run_json)
    assert not re.search(r"https?:", page)
    parser = _Tags()
    parser.feed(page)
    assert {tag for tag, _ in parser.tags} & {"script", "link", "img", "iframe"} == set()
    assert not [attrs for _, attrs in parser.tags if "src" in attrs or "href" in attrs]
    assert "<style>" in page


def test_the_inline_svg_has_one_bar_per_started_node_and_a_tooltip_each(
    tmp_path: Path, run_json: dict[str, Any]
) -> None:
    page = _page(tmp_path, run_json)
    svg = ET.fromstring(page[page.index("<svg"):page.index("</svg>") + len("</svg>")])
    bars = [rect for rect in svg.iter("rect") if rect.get("class") == "bar"]
    assert sorted(str(bar.get("data-node")) for bar in bars) == sorted(
        set(run_json["nodes"]) - {"blocked"}
    )
    failed = next(bar for bar in bars if bar.get("data-node") == "answer/plan1/1")
    title = failed.find("title")
    assert title is not None and "failed" in str(title.text) and "no town 'X'" in str(title.text)


def test_the_table_lists_every_node_and_escapes_text(
    tmp_path: Path, run_json: dict[str, Any]
) -> None:
    run_json["nodes"]["blocked"]["error"] = "<script>alert(1)</script>"
    page = _page(tmp_path, run_json)
    assert page.count("<tr") == 1 + len(run_json["nodes"])
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_an_unknown_extension_is_refused(tmp_path: Path, run_json: dict[str, Any]) -> None:
    with pytest.raises(UnknownFormat, match=r"\.png, \.svg or \.html"):
        write_gantt(run_json, tmp_path / "run.gif")
