"""Helpers for the server tests: free ports, uvicorn in a thread or a subprocess, PostgreSQL
schema clean-up. Loopback only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

KEY_A = "key-acme-0123456789"
KEY_B = "key-globex-0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout: float = 60.0, proc: subprocess.Popen[Any] | None = None
                 ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming healthy")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy after {timeout} s")


class ThreadedServer:
    """uvicorn serving an app object in a background thread of this process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.memory: Any = None

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_healthy(self.url, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class SubprocessServer:
    """``larimar serve --tiny`` in a child process: can be SIGKILLed and restarted."""

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
