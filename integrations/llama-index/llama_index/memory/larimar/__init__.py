"""LlamaIndex components backed by Larimar episodic memory (one-shot writes, exact forgetting).

- `LarimarMemoryBlock`: a block for `llama_index.core.memory.Memory`.
- `LarimarQueryEngine`: memory-conditioned answers, routed by the scope detector.
- `LarimarToolSpec`: remember / recall / forget tools for `FunctionAgent` and `AgentWorkflow`.
"""

from llama_index.memory.larimar._client import ContextSource, LarimarBinding
from llama_index.memory.larimar.base import LarimarMemoryBlock
from llama_index.memory.larimar.query_engine import LarimarQueryEngine
from llama_index.memory.larimar.tools import LarimarToolSpec

from larimar_memory.protocol import MemoryBackend

__all__ = [
    "ContextSource", "LarimarBinding", "LarimarMemoryBlock", "LarimarQueryEngine",
    "LarimarToolSpec", "MemoryBackend",
]
