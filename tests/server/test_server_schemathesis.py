"""Property-based API testing with schemathesis against the served OpenAPI schema: whatever
the generated input (wrong types, odd strings, missing fields, bad headers), the server never
answers 500 and its answers match the schema. Examples are capped so this stays fast."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from server_testing import KEY_A

from larimar_memory.server import ServerSettings, create_app
from larimar_memory.testing import tiny_larimar

AUTH = {"Authorization": f"Bearer {KEY_A}"}
# The schema is loaded at import (schemathesis parametrizes at collection), so the app and
# its temp store are built here and removed by the module fixture below.
_FOLDER = Path(tempfile.mkdtemp(prefix="larimar-schemathesis-"))
# The tiny Llama (rotary positions): the tiny GPT-2 has only 256 learned positions, so a
# 256-token answer overruns them (IndexError) until the decoder clamps max_new_tokens to its
# context; real decoders (SmolLM2: 8192, gpt2-large: 1024) do not reach that within the API's
# limits (question <= max_text_tokens, max_new_tokens <= 256).
_MEMORY = tiny_larimar(_FOLDER / "store.sqlite3", decoder="llama")
_MEMORY.remember(["Alice lives in Lisbon.", "Bob plays the cello."], namespace="acme/notes")
_APP = create_app(_MEMORY, ServerSettings(api_keys={KEY_A: "acme"}, max_body_bytes=65536))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    _MEMORY.close()
    shutil.rmtree(_FOLDER, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_never_fails_on_generated_input(case) -> None:
    # Every default check (no 5xx, status codes and bodies as documented, invalid data
    # rejected, auth enforced) except "schema-valid data is accepted": the core refuses input
    # no JSON schema can describe (whitespace-only text, more tokens than the model takes) with
    # the same 422 EmptyInputError/TextInputError the local Larimar raises, which the client
    # turns back into those exceptions.
    case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])
