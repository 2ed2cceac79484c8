"""The benchmark commands run end to end on the tiny model and write what docs/results.md cites
(figures are not asserted: speed targets live in the benchmark output, not in tests)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch

from larimar_memory.benchmarks import server_bench, service_bench


def test_service_bench_writes_every_operation_ratio_and_profile(tmp_path: Path) -> None:
    out = tmp_path / "service.json"
    results = service_bench.run(out=out, facts=12, tiny=True, plot=False, recall_facts=60,
                                encrypt=True)  # the option of issue 29's write-cost figure
    saved = json.loads(out.read_text())
    assert saved["store"] == {"backend": "SQLiteStore", "encrypted": True}
    assert saved["encryption"]["on"]["n"] == saved["encryption"]["off"]["n"] == 12
    assert saved["larimar"]["recall"]["facts_in_namespace"] == 60
    for op in ("remember", "forget", "recall", "ask"):
        assert saved["larimar"][op]["p50_ms"] > 0 and saved["larimar"][op]["n"] > 0
    assert "remember" in saved["larimar"]["profiles"]  # where a remember's time goes, always
    ratios = results["ratios_larimar_over_baseline_p50"]["langchain_InMemoryVectorStore"]
    assert ratios["remember"] > 0
    assert "remember_le_0.5x_vector_store_add_same_runtime" in results["targets_met"]


def test_server_bench_measures_requests_and_cpu_per_request(tmp_path: Path) -> None:
    out = tmp_path / "server.json"
    results = server_bench.run(out=out, backends=("sqlite",), clients=(1, 2), duration=0.5,
                               tiny=True, plot=False)
    rows = json.loads(out.read_text())["backends"]["sqlite"]["rows"]
    assert {(r["operation"], r["clients"]) for r in rows} == {
        (op, n) for op in ("remember", "recall") for n in (1, 2)}
    for row in rows:
        assert row["errors"] == {} and row["requests"] > 0, row
        assert row["client_cpu_ms_per_request"] > 0
        assert row.get("server_cpu_ms_per_request", 1.0) > 0  # absent only without /proc
    assert len(results["summary"]) == 4


def test_block_bench_times_the_llamaindex_block_beside_recall(tmp_path: Path) -> None:
    pytest.importorskip("llama_index.memory.larimar")
    from larimar_memory.benchmarks import block_bench

    out = tmp_path / "block.json"
    results = block_bench.run(out=out, sizes=(20, 60), turns=4, tiny=True, plot=False)
    saved = json.loads(out.read_text())
    assert [r["facts"] for r in saved["sizes"]] == [20, 60]
    for row in saved["sizes"]:
        assert row["block_aget"]["p50_ms"] > 0 and row["recall_k3"]["p50_ms"] > 0
    assert results["target"]["facts"] == 60 and results["turns"] == 4


def test_namespace_bench_reports_rss_hit_rate_and_store_size(tmp_path: Path) -> None:
    from larimar_memory.benchmarks import namespace_bench

    out = tmp_path / "namespaces.json"
    results = namespace_bench.run(out=out, backends=("sqlite",), namespaces=12, facts=3,
                                  clients=2, duration=0.5, cache_mb=0.01, pool=6, tiny=True,
                                  plot=False)
    data = json.loads(out.read_text())["backends"]["sqlite"]
    assert [r["operation"] for r in data["rows"]] == ["remember", "recall"]
    for row in data["rows"]:
        assert row["errors"] == {} and row["requests"] > 0, row
        assert set(row["cache"]) == {"hits", "catch_ups", "loads", "evictions", "hit_rate"}
        assert row["cache"]["loads"] > 0 and row["cache"]["evictions"] > 0  # budget < 1 ns
        assert row["rss_peak_mb"] > 0 and row["cached_namespaces"] >= 1
    assert data["store"]["facts"] >= 12 * 3 and data["store"]["bytes_per_fact"] > 0
    assert set(data["rss_budget"]) >= {"warm_rss_mb", "peak_rss_mb", "held"}
    assert len(results["backends"]["sqlite"]["rss_series"]) > 0


def test_worker_bench_counts_every_fact_against_the_acknowledged(tmp_path: Path) -> None:
    from larimar_memory.benchmarks import worker_bench

    out = tmp_path / "workers.json"
    worker_bench.run(out=out, workers=(2,), clients=(1, 2), duration=0.5, namespaces=2,
                     tiny=True, plot=False)
    run = json.loads(out.read_text())["runs"][0]
    assert run["workers"] == 2 and {r["operation"] for r in run["rows"]} == {"remember",
                                                                             "recall"}
    check = run["count_check"]
    assert check["acknowledged"] == check["stored"] > 0
    assert check["lost"] == check["doubled"] == check["unacknowledged"] == 0


def test_count_check_names_lost_doubled_and_unacknowledged(tmp_path: Path) -> None:
    from larimar_memory.benchmarks.worker_bench import count_check
    from larimar_memory.testing import tiny_larimar

    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        mem.remember(["fact one", "fact two"], namespace="n")
        mem.remember("fact two", namespace="m")  # the same text in another namespace
    assert count_check(str(path), ["n", "m"], ["fact one", "fact three"]) == {
        "acknowledged": 2, "stored": 3, "lost": 1, "doubled": 1, "unacknowledged": 2}


def test_ask_bench_compares_models_interleaved(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``--models``: every checkpoint answers the same questions, its rows named after it."""
    from larimar_memory import scope
    from larimar_memory.benchmarks import ask_bench
    from larimar_memory.testing import HashingEmbedder, tiny_test_model

    embedder = scope.SentenceEmbedder
    monkeypatch.setattr(scope, "SentenceEmbedder", lambda: embedder(model=HashingEmbedder()))
    folders = [tmp_path / "a", tmp_path / "b"]
    for seed, folder in enumerate(folders):
        tiny_test_model(seed=seed, memory_slots=16).save_pretrained(folder)
    results = ask_bench.run(("float32",), rounds=1, out=tmp_path / "ask.json", plot=False,
                            models=tuple(map(str, folders)))
    rows = results["latency"]["rows"]
    assert {key.rsplit("/", 1)[0] for key in rows} == {f"{f}/float32" for f in folders}
    assert sum(row["n"] for row in rows.values()) == 2 * 10


def test_the_machine_names_what_moves_the_figures() -> None:
    """CPU instruction set and VNNI (int8 decoding is ~2.5× slower without it) and the
    versions of the packages that change decoded answers."""
    from larimar_memory.benchmarks.common import machine
    from larimar_memory.quantization import Int8Linear

    described = machine()
    assert described["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()
    assert described["cpu"]["vnni"] is (not Int8Linear.reduce_range)
    assert described["packages"]["transformers"] and described["torch"] == torch.__version__


def test_ask_bench_serves_each_weight_format_and_stops_the_servers() -> None:
    """``--serve``: a `larimar serve` subprocess per format answers through its client, and
    is gone after; other checkpoints than the packaged one are refused (the server opens
    none)."""
    from larimar_memory.benchmarks import ask_bench
    from larimar_memory.errors import ArgumentError
    from larimar_memory.types import AskResult

    with ask_bench.served(["float32"], threads=1, tiny=True) as clients:
        assert list(clients) == ["float32/serve"]
        client = clients["float32/serve"]
        client.remember(ask_bench.FACTS)
        assert isinstance(client.ask(ask_bench.ASKS[0], max_new_tokens=2), AskResult)
        url = client._inner.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2.0)
    with pytest.raises(ArgumentError, match="packaged model"):
        ask_bench.latency(["int8"], 1, models=("elsewhere",), serve=True)
