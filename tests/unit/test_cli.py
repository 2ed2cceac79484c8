"""The `larimar` command on a store written by a tiny model (listing needs no model)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from larimar_memory.cli import app
from larimar_memory.testing import tiny_larimar


def test_list_filters_on_metadata(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        mem.remember(["I like tea.", "I like coffee.", "I like juice."], namespace="chat",
                     metadata=[{"speaker": "Ann", "session": 1}, {"speaker": "Ben", "session": 1},
                               {"speaker": "Ann", "session": 2}])
    runner = CliRunner()
    args = ["list", "--store", str(path), "--namespace", "chat", "--json"]
    out = runner.invoke(app, [*args, "--filter", "speaker=Ann"])
    assert out.exit_code == 0, out.output
    assert [f["text"] for f in json.loads(out.output)] == ["I like tea.", "I like juice."]
    out = runner.invoke(app, [*args, "--filter", "speaker=Ann", "--filter", "session=2"])
    assert [f["text"] for f in json.loads(out.output)] == ["I like juice."]
    assert runner.invoke(app, [*args, "--filter", "nofield"]).exit_code != 0
