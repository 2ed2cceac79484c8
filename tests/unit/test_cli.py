"""The `larimar` command on a store written by a tiny model (listing needs no model)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from larimar_memory.cli import app
from larimar_memory.errors import PurgePendingError
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


def test_purge_reports_and_fails_while_a_reader_holds_the_bytes(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        fact = mem.remember("Ostrich-Banjo-4471 is a secret.").ids[0]
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM larimar_facts").fetchone()
    with tiny_larimar(path) as mem, pytest.raises(PurgePendingError):
        mem.forget(fact)  # the reader holds the old snapshot
    runner = CliRunner()
    out = runner.invoke(app, ["purge", "--store", str(path), "--json"])
    assert out.exit_code == 1, out.output
    assert json.loads(out.output)["purged"] is False
    reader.execute("COMMIT")
    reader.close()
    out = runner.invoke(app, ["purge", "--store", str(path)])
    assert out.exit_code == 0, out.output
    assert "purged" in out.output and "backups" in out.output
    assert not any(b"Ostrich-Banjo-4471" in p.read_bytes() for p in tmp_path.iterdir())
