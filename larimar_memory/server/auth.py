"""API keys bound to tenants, and the namespace mapping that isolates tenants.

A tenant's namespace ``ns`` is ``"<tenant>/<ns>"`` in the core. Tenant names are one plain
segment (``names.TENANT_RULE``) and the core's first segment is always the caller's tenant, so
no request of one tenant can ever name a namespace of another: reading, listing and forgetting
all stay inside the caller's prefix. Namespaces follow the one rule, ``names.NAMESPACE_RULE``.

Key sources (merged; a key bound to two different tenants is refused):

* ``LARIMAR_API_KEYS="key1:tenantA,key2:tenantB"``;
* a JSON file ``{"key1": "tenantA"}`` or ``{"keys": [{"key": "key1", "tenant": "tenantA"}]}``;
* a TOML file with a ``[keys]`` table (``key1 = "tenantA"``) or ``[[keys]]`` entries.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import LarimarError
from ..names import (
    MAX_NAMESPACE_CHARS,
    SEPARATOR,
    TENANT_RULE,
    check_namespace,
    is_namespace,
    is_tenant,
)

API_KEYS_ENV = "LARIMAR_API_KEYS"
MIN_KEY_CHARS = 8


class ApiKeyConfigError(LarimarError, ValueError):
    """The API key configuration is malformed; the message names the source and the fix."""


def _check_pair(key: Any, tenant: Any, source: str) -> tuple[str, str]:
    if not isinstance(key, str) or len(key.strip()) < MIN_KEY_CHARS:
        raise ApiKeyConfigError(
            f"{source}: API keys must be strings of at least {MIN_KEY_CHARS} characters, got "
            f"{'a ' + type(key).__name__ if not isinstance(key, str) else repr(key[:3] + '…')}"
        )
    if not is_tenant(tenant):
        raise ApiKeyConfigError(f"{source}: tenant {tenant!r} is not valid: {TENANT_RULE}")
    return key.strip(), tenant


def parse_env_keys(value: str, source: str = API_KEYS_ENV) -> dict[str, str]:
    """``"key1:tenantA,key2:tenantB"`` -> ``{"key1": "tenantA", ...}``."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, tenant = item.rpartition(":")
        if not sep:
            raise ApiKeyConfigError(
                f"{source}: entry {item[:3]!r}… has no ':tenant'; write key1:tenantA,key2:tenantB"
            )
        _merge(keys, *_check_pair(key, tenant, source), source)
    return keys


def _pairs_from_document(doc: Any, source: str) -> list[tuple[Any, Any]]:
    table = doc.get("keys", doc) if isinstance(doc, dict) else doc
    if isinstance(table, dict):
        return list(table.items())
    if isinstance(table, list) and all(isinstance(e, dict) for e in table):
        return [(e.get("key"), e.get("tenant")) for e in table]
    raise ApiKeyConfigError(
        f"{source}: expected a mapping key -> tenant, or a list of {{key, tenant}} entries"
    )


def load_keys_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Keys from a JSON (``.json``) or TOML (any other suffix) file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ApiKeyConfigError(f"cannot read the API keys file {path}: {exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(raw)
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            doc = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiKeyConfigError(f"{path} is not valid {path.suffix or 'TOML'}: {exc}") from exc
    keys: dict[str, str] = {}
    for key, tenant in _pairs_from_document(doc, str(path)):
        _merge(keys, *_check_pair(key, tenant, str(path)), str(path))
    return keys


def _merge(keys: dict[str, str], key: str, tenant: str, source: str) -> None:
    if keys.get(key, tenant) != tenant:
        raise ApiKeyConfigError(
            f"{source}: one API key is bound to two tenants ({keys[key]!r} and {tenant!r}); "
            "give each tenant its own key"
        )
    keys[key] = tenant


def resolve_keys(
    explicit: Mapping[str, str] | None = None,
    keys_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """All configured keys: explicit ones, the file's, then ``LARIMAR_API_KEYS``."""
    environ = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    for key, tenant in (explicit or {}).items():
        _merge(keys, *_check_pair(key, tenant, "ServerSettings.api_keys"), "api_keys")
    if keys_file is not None:
        for key, tenant in load_keys_file(keys_file).items():
            _merge(keys, key, tenant, str(keys_file))
    if environ.get(API_KEYS_ENV):
        for key, tenant in parse_env_keys(environ[API_KEYS_ENV]).items():
            _merge(keys, key, tenant, API_KEYS_ENV)
    return keys


class KeyRing:
    """Looks a presented key up in constant time per configured key (no early exit that
    would let timing reveal a prefix)."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = [(k.encode(), t) for k, t in keys.items()]

    def __len__(self) -> int:
        return len(self._keys)

    def tenant(self, presented: str | None) -> str | None:
        if not presented:
            return None
        candidate = presented.encode("utf-8", "surrogateescape")
        found = None
        for key, tenant in self._keys:
            if hmac.compare_digest(key, candidate):
                found = tenant
        return found


def core_namespace(tenant: str | None, namespace: str) -> str:
    """The namespace the core sees: ``tenant/ns``, or ``ns`` itself without auth. The prefix
    takes part of the rule's length budget: `NamespaceError` when ``tenant/ns`` would not fit."""
    if tenant is None:
        return check_namespace(namespace)
    budget = MAX_NAMESPACE_CHARS - len(tenant) - len(SEPARATOR)
    return f"{tenant}{SEPARATOR}{check_namespace(namespace, max_chars=budget)}"


def visible_namespaces(tenant: str | None, names: list[str]) -> list[str]:
    """The caller's namespaces, without their prefix, exactly as they were written; names the
    rule refuses (left by older versions) are left out."""
    if tenant is None:
        return [n for n in names if is_namespace(n)]
    prefix = tenant + SEPARATOR
    own = (n[len(prefix):] for n in names if n.startswith(prefix))
    return [n for n in own if is_namespace(n)]
