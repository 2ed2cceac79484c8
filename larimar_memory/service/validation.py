"""The checks that need the served model: token counts and decoder positions. Every other
argument check is the input contract (`larimar_memory.contract`), shared with the server and
the clients."""

from __future__ import annotations

from ..errors import TextInputError
from ..filters import matches  # noqa: F401 (the one filter language, re-exported)


def check_token_counts(counts: list[int], limit: int) -> None:
    for i, count in enumerate(counts):
        if count > limit:
            raise TextInputError(
                f"fact [{i}] is {count} tokens; at most max_fact_tokens={limit} are allowed. "
                "Split it into shorter facts (e.g. by paragraph) and remember those; nothing "
                "was written"
            )


def check_question_fits(count: int, new_tokens: int, positions: int | None) -> None:
    """A question plus its answer (plus a memory block of k facts' rows, which a context of a
    few thousand positions holds) must fit the decoder's positions; a GPT-2 style LM would
    otherwise fail with an IndexError."""
    if positions is not None and count + new_tokens > positions // 2:
        raise TextInputError(
            f"question is {count} tokens; with {new_tokens} new tokens it must stay under "
            f"{positions // 2} (half of the decoder's {positions} positions, the rest is "
            "for the memory block). Shorten it"
        )

