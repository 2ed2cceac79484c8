"""The object users hold, split by job: `settings`, `validation`, the namespace `cache` (the
fact log's in-process memories), `writes` (resolve and replace) and `remembers` (running
remember calls), `reads` (ranking, the scope decision, recall and ask), `forgets`,
`maintenance` (stats, reencode), `batching` (the one batch fallback), `parts` (what they
share) and the `larimar` facade; the ranking and scope rule is `larimar_memory.relevance`."""

from .larimar import Larimar, RecallCall
from .settings import OWNER_FIELDS, SLOT_FIELD, LarimarSettings
from .writes import RememberCall

__all__ = ["OWNER_FIELDS", "SLOT_FIELD", "Larimar", "LarimarSettings", "RecallCall",
           "RememberCall"]
