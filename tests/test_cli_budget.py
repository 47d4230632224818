"""`--budget` and `--prices` on `taskloom run`: exit 5 with the limit in `--json`, one
line and exit 2 for a bad option, and the accounting in the table and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskloom.cli import app
from taskloom.program.budget import Budget, BudgetParseError, parse_budget_items

runner = CliRunner()

SPEC = """\
name: three
nodes:
  calc: {kind: tool, tool: calculator, args: {expression: "6 * 7"}}
  a: {kind: llm, prompt: "one {{ calc }}"}
  b: {kind: llm, prompt: "two", after: [a]}
  c: {kind: llm, prompt: "three", after: [b]}
outputs:
  calc: "{{ calc }}"
"""


def _spec(tmp_path: Path, text: str = SPEC) -> str:
    path = tmp_path / "three.yaml"
    path.write_text(text)
    return str(path)


def _run(tmp_path: Path, *options: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["run", _spec(tmp_path), "--backend", "scripted", "--no-save", *options]
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_crossed_budget_exits_5_and_the_json_says_which_limit(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path, "--budget", "llm_calls=2", "--budget", "tokens=5000", "--json")
    assert code == 5
    shown = json.loads(out)
    assert shown["status"] == "budget_exceeded"
    assert shown["budget_exceeded"] == {"limit": "llm_calls", "allowed": 2, "used": 3}
    assert shown["nodes"]["calc"]["output"] == 42 and shown["outputs"] == {"calc": 42}
    assert shown["nodes"]["c"]["status"] == "cancelled"  # its call was never sent
    assert shown["totals"]["llm_calls"] == 2 and shown["totals"]["tool_calls"] == 1
    for field in ("tool_calls", "tool_s", "engine_s", "queue_s", "cost_usd"):
        assert field in shown["nodes"]["a"]


def test_a_specs_own_budget_is_enforced_and_the_table_shows_totals(tmp_path: Path) -> None:
    spec = SPEC.replace("name: three", "name: three\nbudget: {generated_tokens: 1}")
    result = runner.invoke(app, ["run", _spec(tmp_path, spec), "--backend", "scripted",
                                 "--no-save"])
    assert result.exit_code == 5
    shown = " ".join(result.stdout.split())  # as one line, however the table wrapped
    assert "budget exceeded: generated_tokens 2 > 1" in shown
    assert "2 llm calls · 1 tool calls" in shown


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("llm_call=2", "unknown limit 'llm_call' (did you mean 'llm_calls'?)"),
        ("llm_calls=0", "must be positive"),
        ("tokens=many", "'many' is not a whole number"),
        ("wall_s=nan", "must be positive"),
        ("tokens", "expects KEY=VALUE"),
    ],
)
def test_a_bad_budget_item_is_one_line_and_exit_2(tmp_path: Path, item: str,
                                                    message: str) -> None:
    code, _, err = _run(tmp_path, "--budget", item)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_prices_add_cost_and_a_missing_model_is_refused_at_start(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("default: {prompt: 2.0, cached_prompt: 1.0, generated: 10.0}\n")
    code, out, _ = _run(tmp_path, "--prices", str(prices), "--json")
    shown = json.loads(out)
    assert code == 0 and shown["totals"]["cost_usd"] > 0
    assert shown["nodes"]["calc"]["cost_usd"] == 0.0
    node = shown["nodes"]["a"]
    expected = (node["prompt_tokens"] * 2.0 + node["generated_tokens"] * 10.0) / 1e6
    assert node["cost_usd"] == pytest.approx(expected)

    named = SPEC.replace("name: three", "name: three\ndefaults: {model: gpt-mini}")
    prices.write_text("gpt-mimi: {prompt: 1, generated: 1}\n")
    result = runner.invoke(app, ["run", _spec(tmp_path, named), "--backend", "scripted",
                                 "--no-save", "--prices", str(prices)])
    assert result.exit_code == 2
    assert "no price for model 'gpt-mini' (did you mean 'gpt-mimi'?)" in result.stderr


def test_budget_items_parse_and_the_last_of_a_repeated_key_wins() -> None:
    assert parse_budget_items(["llm_calls=3", "wall_s=1.5", "llm_calls=4"]) == Budget(
        llm_calls=4, wall_s=1.5)
    assert parse_budget_items([]) is None
    with pytest.raises(BudgetParseError):
        parse_budget_items(["wall_s=inf"])
