"""LangChain integration of larimar-memory: Larimar episodic memory for chains and agents.

`LarimarMemory` (an LCEL step and conversation memory), `LarimarMiddleware` (for
``langchain.agents.create_agent``), `ChatLarimar` (the memory-conditioned decoder as a chat
model), the ``remember``/``recall``/``forget`` tools in `LarimarToolkit`, `LarimarRetriever`
(top-k recall as documents) and `LarimarStore` (a LangGraph ``BaseStore``).
"""

from __future__ import annotations

from importlib import metadata

from larimar_memory.protocol import MemoryBackend

from ._client import LarimarBinding, RecallBinding
from ._convert import ContextSource
from .chat_models import ChatLarimar
from .memory import LarimarMemory
from .middleware import LarimarMiddleware
from .retrievers import LarimarRetriever
from .store import LarimarStore
from .tools import (
    LarimarToolkit,
    create_forget_tool,
    create_recall_tool,
    create_remember_tool,
)

try:
    __version__ = metadata.version("langchain-larimar")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = ""

__all__ = [
    "ChatLarimar",
    "ContextSource",
    "LarimarBinding",
    "LarimarMemory",
    "LarimarMiddleware",
    "LarimarRetriever",
    "LarimarStore",
    "LarimarToolkit",
    "MemoryBackend",
    "RecallBinding",
    "__version__",
    "create_forget_tool",
    "create_recall_tool",
    "create_remember_tool",
]
