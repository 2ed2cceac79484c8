"""Helpers for the server tests: free ports, uvicorn in a thread or a subprocess, PostgreSQL
schema clean-up. Loopback only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from larimar_memory.testing import ThreadedServer, free_port, wait_healthy

__all__ = ["KEY_A", "KEY_B", "ForkedServer", "SubprocessServer", "ThreadedServer", "drop_schema",
           "free_port", "wait_healthy"]

KEY_A = "key-acme-0123456789"
KEY_B = "key-globex-0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]


class SubprocessServer:
    """``larimar serve --tiny`` (the real CLI) in a fresh interpreter: can be SIGKILLed and
    restarted. A start imports torch and transformers (~15-35 s on a loaded 2-core box)."""

    def __init__(self, store: str, tmp: Path, keys: str = f"{KEY_A}:acme,{KEY_B}:globex",
                 max_concurrency: int = 4) -> None:
        self.store, self.tmp, self.keys = store, tmp, keys
        self.max_concurrency = max_concurrency
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 90.0) -> None:
        env = {**os.environ, "LARIMAR_API_KEYS": self.keys, "TOKENIZERS_PARALLELISM": "false",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.starts += 1
        log = open(self.tmp / f"server-{self.starts}.log", "wb")  # noqa: SIM115 - child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "larimar_memory.server.cli", "--tiny", "--host", "127.0.0.1",
             "--port", str(self.port), "--store", self.store, "--torch-threads", "1",
             "--max-concurrency", str(self.max_concurrency), "--log-level", "warning"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_healthy(self.url, timeout=timeout, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, the way a machine dies."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 3000) -> str:
        logs = sorted(self.tmp.glob("server-*.log"))
        return "".join(p.read_text(errors="replace")[-n:] for p in logs)


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _serve_forked(settings_json: str, port: int) -> None:
    import uvicorn

    from larimar_memory.server import ServerSettings, create_app

    settings = ServerSettings.model_validate_json(settings_json)
    uvicorn.run(create_app(None, settings), host="127.0.0.1", port=port, log_level="warning")


class ForkedServer:
    """The server in a forked child of the test process: a real separate process (SIGKILL is
    a real crash, the store is opened anew), but it starts in about a second because torch
    and transformers are already imported. Used where a test restarts the server."""

    def __init__(self, store: str, settings: Any) -> None:
        self.settings = settings.model_copy(update={"store": store, "tiny": True})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Any = None

    def start(self, timeout: float = 60.0) -> None:
        import multiprocessing as mp

        self.proc = mp.get_context("fork").Process(
            target=_serve_forked, args=(self.settings.model_dump_json(), self.port), daemon=True
        )
        self.proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.is_alive():
                raise RuntimeError(f"forked server exited with {self.proc.exitcode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url} not healthy after {timeout} s")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=20)
            if self.proc.is_alive():
                self.kill()
