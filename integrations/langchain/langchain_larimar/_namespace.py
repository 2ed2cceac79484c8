"""Which memory namespace a run reads and writes: one rule, shared by every component.

1. the component's own ``namespace`` field, when set;
2. ``user_id`` from the LangGraph runtime context (``create_agent(context_schema=...)``, an
   attribute or a mapping key) → ``"user:<user_id>"``;
3. ``config["configurable"]["user_id"]`` → ``"user:<user_id>"``;
4. ``config["configurable"]["thread_id"]`` (or the runtime's thread id) → ``"thread:<thread_id>"``;
5. otherwise None: the Larimar's own default namespace.

A user's facts follow them across threads; without a user id, each conversation thread gets its
own memory. The prefixes keep a user id and a thread id that happen to be equal apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

USER_PREFIX = "user:"
THREAD_PREFIX = "thread:"
# Where LangGraph keeps the `Runtime` in a node's config (langgraph._internal._constants).
_RUNTIME_KEY = "__pregel_runtime"


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def resolve_namespace(
    explicit: str | None,
    config: Mapping[str, Any] | None = None,
    *,
    runtime: Any = None,
) -> str | None:
    """The namespace for one call, by the rule in this module's docstring. ``runtime`` is a
    LangGraph `Runtime`; without it, the one LangGraph put in ``config`` (if any) is used."""
    if explicit:
        return explicit
    configurable = _field(config, "configurable") or {}
    if runtime is None:
        runtime = configurable.get(_RUNTIME_KEY)
    user = _field(_field(runtime, "context"), "user_id") or configurable.get("user_id")
    if user not in (None, ""):
        return f"{USER_PREFIX}{user}"
    thread = configurable.get("thread_id") or _field(_field(runtime, "execution_info"), "thread_id")
    if thread not in (None, ""):
        return f"{THREAD_PREFIX}{thread}"
    return None
