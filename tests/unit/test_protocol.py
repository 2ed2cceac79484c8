"""`Larimar`, `LarimarClient` and `AsyncLarimarClient` implement the `MemoryBackend` /
`AsyncMemoryBackend` protocols: every method exists, with the protocol's keyword parameters
(names and defaults), so integrations written against the protocol run on all three. A missing
or renamed parameter fails here, not in a user's agent."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from typing_extensions import Unpack

from larimar_memory.protocol import AsyncMemoryBackend, MemoryBackend
from larimar_memory.scoping import SCOPE_FIELDS, Scope

pytest.importorskip("httpx")
from larimar_memory.server.client import AsyncLarimarClient, LarimarClient  # noqa: E402


def _members(protocol: type) -> list[str]:
    return sorted(
        name for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    )


def _params(fn: Any) -> dict[str, tuple[Any, Any]]:
    """Name -> (kind, default) of every parameter but self; ``**scope: Unpack[Scope]`` stands
    for the keyword-only scope ids (default None) it takes."""
    params = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name == "self":
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD and "Unpack[Scope]" in str(p.annotation):
            params.update({f: (inspect.Parameter.KEYWORD_ONLY, None) for f in SCOPE_FIELDS})
        else:
            params[name] = (p.kind, p.default)
    return params


def _shape(fn: Any) -> tuple[list[str], dict[str, Any], bool]:
    """(positional names, keyword-only name -> default, takes **kwargs)."""
    params = _params(fn)
    positional = [n for n, (k, _) in params.items()
                  if k in (inspect.Parameter.POSITIONAL_ONLY,
                           inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    keywords = {n: d for n, (k, d) in params.items() if k is inspect.Parameter.KEYWORD_ONLY}
    var_kw = any(k is inspect.Parameter.VAR_KEYWORD for k, _ in params.values())
    return positional, keywords, var_kw


def _check_signature(impl: Any, protocol_fn: Any, reference: Any, where: str) -> None:
    """``impl`` accepts exactly what ``reference`` (the protocol's sync signature) accepts.

    A protocol method written ``(text, **kwargs)`` (the async twins) is checked against the sync
    method it mirrors; an implementation written ``(text, **kwargs)`` forwards to its own sync
    method, which is checked on its own."""
    impl_pos, impl_kw, impl_var = _shape(impl)
    ref_pos, ref_kw, _ = _shape(reference)
    proto_pos, _, _ = _shape(protocol_fn)
    assert impl_pos == proto_pos, f"{where}: positional parameters {impl_pos} != {proto_pos}"
    if impl_var and not impl_kw:
        return  # forwards **kwargs to a method checked on its own
    missing, extra = sorted(set(ref_kw) - set(impl_kw)), sorted(set(impl_kw) - set(ref_kw))
    assert not missing and not extra, (
        f"{where}: keyword parameters {sorted(impl_kw)} != protocol's {sorted(ref_kw)} "
        f"(missing {missing}, extra {extra})"
    )
    for name, default in ref_kw.items():
        assert impl_kw[name] == default, (
            f"{where}: default of {name!r} is {impl_kw[name]!r}, protocol says {default!r}"
        )


def _sync_twin(name: str) -> str:
    return name[1:] if name.startswith("a") and hasattr(MemoryBackend, name[1:]) else name


def check_backend(obj: Any, protocol: type, *, coroutines: bool) -> None:
    assert isinstance(obj, protocol), f"{type(obj).__name__} is not a {protocol.__name__}"
    assert isinstance(obj.namespace, str)
    for name in _members(protocol):
        if name == "namespace":
            continue
        impl = getattr(type(obj), name, None)
        assert impl is not None, f"{type(obj).__name__}.{name} is missing"
        proto_fn = getattr(protocol, name)
        is_async = inspect.iscoroutinefunction(proto_fn)
        assert inspect.iscoroutinefunction(impl) == is_async, (
            f"{type(obj).__name__}.{name} must {'' if is_async else 'not '}be a coroutine"
        )
        reference = getattr(MemoryBackend, _sync_twin(name))
        _check_signature(impl, proto_fn, reference, f"{type(obj).__name__}.{name}")
    if coroutines:
        assert all(inspect.iscoroutinefunction(getattr(type(obj), n))
                   for n in _members(protocol) if n != "namespace")


@pytest.fixture
def larimar(tmp_path):
    from larimar_memory.testing import tiny_larimar

    memory = tiny_larimar(tmp_path / "store.sqlite3")
    yield memory
    memory.close()


def test_larimar_is_a_memory_backend(larimar) -> None:
    check_backend(larimar, MemoryBackend, coroutines=False)


def test_larimar_client_is_a_memory_backend() -> None:
    with LarimarClient("http://127.0.0.1:9", namespace="n") as client:
        check_backend(client, MemoryBackend, coroutines=False)


async def test_async_client_is_an_async_memory_backend() -> None:
    async with AsyncLarimarClient("http://127.0.0.1:9", namespace="n") as client:
        check_backend(client, AsyncMemoryBackend, coroutines=True)


def test_the_check_catches_a_missing_parameter() -> None:
    class Missing(LarimarClient):
        def recall(self, query: str, *, namespace: str | None = None,  # type: ignore[override]
                   decode: bool = True, filter: dict[str, Any] | None = None,
                   **scope: Unpack[Scope]) -> Any:
            raise NotImplementedError  # no k

    class WrongDefault(LarimarClient):
        def list(self, *, namespace: str | None = None,  # type: ignore[override]
                 filter: dict[str, Any] | None = None, limit: int | None = 10,
                 offset: int = 0, **scope: Unpack[Scope]) -> Any:
            raise NotImplementedError

    cases = ((Missing, re.escape("missing ['k']")), (WrongDefault, "default of 'limit'"))
    for cls, needle in cases:
        with cls("http://127.0.0.1:9") as client, pytest.raises(AssertionError, match=needle):
            check_backend(client, MemoryBackend, coroutines=False)
