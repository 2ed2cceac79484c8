"""Crypto-shredding on SQLite: the store contract with encryption on, no plaintext in any file of
the store, and a clear that destroys the namespace's key so copies taken before it are
unreadable. PostgreSQL runs the same checks in tests/server/test_store_postgres.py."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from store_contract import StoreContract, make_record

from larimar_memory.errors import StoreError
from larimar_memory.store import SQLiteStore
from larimar_memory.store_keys import KEY_FILE_ENV


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "larimar-keys.json"
    monkeypatch.setenv(KEY_FILE_ENV, str(path))  # other threads and processes of the contract
    return path


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "larimar.sqlite3"


@pytest.fixture
def store(store_path: Path, key_file: Path):
    with SQLiteStore(store_path, key_file=key_file) as s:
        yield s


@pytest.fixture
def store_spec(store_path: Path, key_file: Path) -> tuple[str, str]:
    return ("sqlite", str(store_path))


class TestEncryptedSQLiteContract(StoreContract):
    pass


SECRETS = ("Wombat-Sapphire-3318", "Key-Narwhal-7720", "Extra-Gecko-1042", "Meta-Ibis-5567",
           "Request-Lynx-8891")


def secret_record(ns: str):
    text, key, extra, meta, request = SECRETS
    return make_record(ns, f"{text} moved to Lisbon", key_text=f"{key} moved",
                       extra_key_texts=[f"{extra} paraphrase"], extra_keys=np.ones((1, 8)),
                       metadata={"note": meta, meta: 1}, request_id=request)


def found_in(folder: Path, needles: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """(needle, file) for every needle found in any file under ``folder``."""
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [(n, str(path)) for n in needles if n.encode() in data]
    return hits


def test_no_plaintext_in_any_file_and_clear_shreds_the_copies(
        store_path: Path, key_file: Path, tmp_path: Path) -> None:
    folder = store_path.parent
    with SQLiteStore(store_path, key_file=key_file) as store:
        doomed = secret_record("alice")
        with store.transaction("alice") as tx:
            tx.add_facts([doomed, make_record("alice", "plain filler")])
        with store.transaction("bob") as tx:
            tx.add_facts([make_record("bob", "Bob keeps this")])
        got = store.get_fact("alice", doomed.id)
        assert (got.text, got.extra_key_texts, got.metadata, got.request_id) == (
            doomed.text, doomed.extra_key_texts, doomed.metadata, doomed.request_id)
        with store.transaction("alice") as tx:
            assert [r.id for r in tx.find_by_request_id(SECRETS[4])] == [doomed.id]
        assert store.list_facts("alice", where={"note": SECRETS[3]})[0].id == doomed.id
        # encrypted at rest: not one secret in the db, -wal or -shm, even before any forget
        assert found_in(folder, SECRETS) == []
        alice_key = json.loads(key_file.read_text())
        (entries,) = alice_key["stores"].values()
        old_key = entries["alice"]["key"]
        backup = tmp_path / "backup"
        shutil.copytree(folder, backup)  # a backup taken before the clear
        assert store.clear("alice") == 2
        assert old_key not in key_file.read_text() and "alice" not in json.loads(
            key_file.read_text())["stores"][next(iter(alice_key["stores"]))]
        assert [r.text for r in store.list_facts("bob")] == ["Bob keeps this"]
    assert found_in(folder, SECRETS) == []
    # the backup, with the same key file: alice's facts no longer open; bob's still do
    with SQLiteStore(backup / store_path.name, key_file=key_file) as restored:
        with pytest.raises(StoreError, match="no key for it"):
            restored.list_facts("alice")
        assert [r.text for r in restored.list_facts("bob")] == ["Bob keeps this"]
        with pytest.raises(StoreError, match="has facts but the key file"):
            with restored.transaction("alice") as tx:  # never a new key over sealed facts
                tx.add_facts([make_record("alice", "new")])
    assert found_in(backup, SECRETS + (base64.b64decode(old_key).hex(),)) == []


def test_key_file_is_private_and_refused_when_readable(store_path: Path, key_file: Path) -> None:
    with SQLiteStore(store_path, key_file=key_file) as store:
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "x")])
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.parent.stat().st_mode & 0o077 == 0
        os.chmod(key_file, 0o644)
        with pytest.raises(StoreError, match="chmod 600"):
            store.list_facts("ns")
        os.chmod(key_file, 0o600)
        assert [r.text for r in store.list_facts("ns")] == ["x"]


def test_encryption_is_chosen_when_the_store_is_created(tmp_path: Path, key_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plain, sealed = tmp_path / "plain.sqlite3", tmp_path / "sealed.sqlite3"
    SQLiteStore(sealed, key_file=key_file).close()
    monkeypatch.delenv(KEY_FILE_ENV)
    SQLiteStore(plain).close()
    with pytest.raises(StoreError, match="created without encryption"):
        SQLiteStore(plain, key_file=key_file)
    with pytest.raises(StoreError, match="is encrypted"):
        SQLiteStore(sealed)


def test_two_stores_share_a_key_file_without_sharing_keys(tmp_path: Path, key_file: Path) -> None:
    with SQLiteStore(tmp_path / "a.sqlite3", key_file=key_file) as a, \
            SQLiteStore(tmp_path / "b.sqlite3", key_file=key_file) as b:
        for store in (a, b):
            with store.transaction("ns") as tx:
                tx.add_facts([make_record("ns", "same namespace name")])
        a.clear("ns")
        assert [r.text for r in b.list_facts("ns")] == ["same namespace name"]
        with a.transaction("ns") as tx:  # a fresh key after the clear
            tx.add_facts([make_record("ns", "again")])
        assert [r.text for r in a.list_facts("ns")] == ["again"]


def test_purge_report_names_what_stays_out_of_reach(store_path: Path, key_file: Path) -> None:
    with SQLiteStore(store_path, key_file=key_file) as store:
        report = store.purge()
    assert report.purged and report.pending == 0 and report.encrypted
    assert any("ciphertext" in line for line in report.out_of_reach)
