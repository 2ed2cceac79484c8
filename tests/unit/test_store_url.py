"""Stores by URL (`open_store`, `Larimar(store=...)`): a URL connects or fails with a clear
error, and never becomes a file."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest

from larimar_memory.errors import StoreError, StoreURLError
from larimar_memory.store_sqlite import SQLiteStore
from larimar_memory.store_url import open_store


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths land here; the test checks nothing else


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_paths_and_sqlite_urls(tmp_path: Path) -> None:
    cases = {"plain.db": tmp_path / "plain.db", Path("as-path.db"): tmp_path / "as-path.db",
             "sqlite:///relative.db": tmp_path / "relative.db",
             f"sqlite:///{tmp_path}/abs.db": tmp_path / "abs.db",  # sqlite:////abs/path
             "sqlite:///with%20space.db": tmp_path / "with space.db"}
    for spec, where in cases.items():
        with open_store(spec) as store:
            assert isinstance(store, SQLiteStore)
            assert store.path.resolve() == where.resolve(), spec
        assert where.exists()


def test_a_store_object_is_itself(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "x.db") as store:
        assert open_store(store) is store


@pytest.mark.parametrize("spec, match", [
    ("mysql://u:secret@host/db", "unknown store URL scheme 'mysql'"),
    ("redis://localhost:6379", "unknown store URL scheme 'redis'"),
    ("http://example.org/facts", "unknown store URL scheme 'http'"),
    ("sqlite:facts.db", "starts with 'sqlite://'"),
    ("postgresql:/u@localhost/db", "starts with 'postgresql://'"),
    ("sqlite://host/facts.db", "no host"),
    ("sqlite://", "names no file"),
    ("sqlite:///:memory:", "names no file"),
    ("sqlite:///x.db?mode=ro", "options"),
    ("postgresql://u:secret@localhost:notaport/db", "malformed PostgreSQL URL"),
])
def test_malformed_and_unknown_urls_are_clear_errors(tmp_path: Path, spec: str,
                                                     match: str) -> None:
    with pytest.raises(StoreURLError, match=match) as info:
        open_store(spec)
    assert "secret" not in str(info.value)  # passwords never reach a message
    assert _files(tmp_path) == []  # and nothing was created


def test_wrong_type_is_a_clear_error() -> None:
    with pytest.raises(StoreURLError, match="path, a URL or a MemoryStore"):
        open_store(42)  # type: ignore[arg-type]


def test_unreachable_postgres_names_the_server(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match=r"Cannot reach PostgreSQL at postgresql://u:\*\*\*@"):
        open_store("postgresql://u:secret@127.0.0.1:9/db?connect_timeout=2")
    assert _files(tmp_path) == []  # the bug this guards: a file at 'postgresql:/u:p@…'


def test_missing_driver_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_psycopg(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "psycopg" or name.startswith("psycopg."):
            raise ImportError("No module named 'psycopg'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "larimar_memory.store_postgres",
                        raising=False)
    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(StoreError, match=r"psycopg 3.*pip install 'larimar-memory\[server\]'"):
        open_store("postgresql://u@localhost/db")
    assert _files(tmp_path) == []


def test_larimar_takes_a_url(tmp_path: Path) -> None:
    from larimar_memory.testing import tiny_larimar

    memory = tiny_larimar("sqlite:///facts.db")
    try:
        memory.remember("Alice lives in Lisbon.")
        assert memory.store.path.resolve() == (tmp_path / "facts.db").resolve()
    finally:
        memory.close()
        memory.store.close()
    with pytest.raises(StoreURLError):
        tiny_larimar("postgresql:/u:p@localhost:5999/db")
    assert not any(".." in p or "postgresql" in p for p in os.listdir(tmp_path))
