"""`larimar eval dialogues`: an agent's memory driven end to end through annotated dialogues.

`schema` (the packaged dialogues and their checks; light), `scoring` (pure metrics over turn
records; light), `modes` (the agent set-ups: LangChain ``create_agent`` with the middleware,
the toolkit, the LangGraph store; LlamaIndex ``Memory`` and the query engine; imported only when
a run starts, since the frameworks are optional), `transports` (in-process `Larimar` or a
``larimar serve`` subprocess through `LarimarClient`), `runner` (drives and saves).
"""
