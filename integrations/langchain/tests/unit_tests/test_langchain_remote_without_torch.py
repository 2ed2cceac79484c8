"""Remote mode never loads the model stack: against a real server (uvicorn in this process),
the components run in a fresh interpreter that never imports torch or transformers."""

from __future__ import annotations

from larimar_memory.server import ServerSettings, create_app
from larimar_memory.testing import ThreadedServer, modules_imported_by


def test_components_over_http_import_no_model_stack(larimar, texts) -> None:
    with ThreadedServer(create_app(larimar, ServerSettings(auth=False))) as server:
        code = f"""
from larimar_memory.server.client import LarimarClient
from langchain_larimar import LarimarMemory, LarimarRetriever, LarimarStore, LarimarToolkit

client = LarimarClient({server.url!r})
alice = {{"configurable": {{"user_id": "alice"}}}}
memory = LarimarMemory(larimar=client, k=1)
assert memory.observe({texts.fact!r}, config=alice).remembered
assert memory.invoke({texts.question!r}, config=alice) == {texts.fact!r}
remember, recall, forget = LarimarToolkit(larimar=client, namespace="thread:t1").get_tools()
assert remember.invoke({{"fact": {texts.other_fact!r}}}).startswith("Remembered")
[doc] = LarimarRetriever(larimar=client, k=1, namespace="thread:t1").invoke(
    {texts.other_question!r})
assert doc.page_content == {texts.other_fact!r}
store = LarimarStore(client, index={{"fields": ["content"]}})
store.put(("memories", "alice"), "m/1", {{"content": {texts.fact!r}}})
assert store.list_namespaces() == [("memories", "alice")]
[item] = store.search(("memories",), query={texts.question!r}, limit=3)
assert item.key == "m/1" and item.value == {{"content": {texts.fact!r}}}
store.delete(("memories", "alice"), "m/1")
"""
        assert modules_imported_by(code) == []
    assert sorted(larimar.namespaces()) == ["langgraph/memories/alice", "thread:t1", "user:alice"]
