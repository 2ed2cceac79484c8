"""Knowledge-editing and perplexity data, read from the offline copies or the official files.

Every edit file becomes a list of `EditRecord`, whatever its layout; the schema is detected per
record, so the copies in ``../shared/data`` (flat EasyEdit CounterFact, MEND zsRE, KnowEdit) and
the full official files (ROME ``counterfact.json``, MEND ``zsre_mend_eval.json``) load the same
way. The data root is ``$LARIMAR_DATA`` or ``../shared/data``; nothing is copied into the repo.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LarimarError

logger = logging.getLogger(__name__)

DATA_ENV = "LARIMAR_DATA"
DEFAULT_DATA_ROOT = Path("../shared/data")

# Default files (relative to the data root). All are evaluation splits: training never reads them.
COUNTERFACT = "counterfact/counterfact-edit.json"  # flat EasyEdit layout
COUNTERFACT_HELDOUT = "counterfact/counterfact-val.json"  # flat EasyEdit layout
# full ROME layout, two paraphrase prompts per record
COUNTERFACT_FULL = "counterfact/counterfact_portability_gpt4.json"
ZSRE = "zsre/zsre_mend_eval_portability_gpt4.json"  # MEND layout with loc / loc_ans
WIKITEXT = "wikitext/wikitext-2-raw/wiki.test.raw"

_WIKI_HEADING = re.compile(r"^\s*=.*=\s*$")


class EvalDataError(LarimarError, ValueError):
    """An evaluation file is missing, unreadable, or holds records of no known schema."""


@dataclass(frozen=True)
class EditRecord:
    """One knowledge edit in a schema-free form.

    ``prompt`` is the edit prompt (CounterFact) or question (zsRE); ``target_new`` the answer the
    edit installs, ``target_true`` the original one (None when the file has none);
    ``neighborhood`` holds (prompt, expected answer) pairs the edit must leave alone.
    """

    case_id: str
    subject: str
    prompt: str
    target_new: str
    target_true: str | None
    paraphrases: tuple[str, ...]
    neighborhood: tuple[tuple[str, str], ...]
    schema: str

    @property
    def fact(self) -> str:
        """The text written to memory: prompt and new answer."""
        return join_prompt(self.prompt, self.target_new)


def join_prompt(prompt: str, answer: str) -> str:
    """``prompt`` followed by ``answer`` with one space between them."""
    return f"{prompt.rstrip()} {answer.strip()}".strip()


def data_root() -> Path:
    """``$LARIMAR_DATA`` if set, else ``../shared/data`` (relative to the working directory)."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT


def resolve_data(path: str | Path | None, default: str) -> Path:
    """The file to read: ``path`` as given, else relative to the data root; ``None`` means the
    experiment's default file under the data root."""
    if path is None:
        candidate = data_root() / default
    else:
        candidate = Path(path).expanduser()
        if not candidate.exists() and not candidate.is_absolute():
            rooted = data_root() / candidate
            candidate = rooted if rooted.exists() else candidate
    if not candidate.is_file():
        raise EvalDataError(
            f"evaluation file {candidate} does not exist; pass --data PATH or set {DATA_ENV} to "
            f"the folder holding {default!r} (default {DEFAULT_DATA_ROOT})"
        )
    return candidate


def read_json_records(path: Path) -> list[dict[str, Any]]:
    """Records of a ``.json`` list (or ``{"data": [...]}``) or a ``.jsonl`` file."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalDataError(f"cannot read {path} as JSON records: {exc}") from exc
    if isinstance(rows, dict) and isinstance(rows.get("data"), list):
        rows = rows["data"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise EvalDataError(f"{path} must hold a JSON list of objects (or JSON lines)")
    return rows


def load_edits(path: str | Path, limit: int | None = None) -> list[EditRecord]:
    """Edit records of any supported file, the first ``limit`` of them."""
    path = Path(path)
    rows = read_json_records(path)
    if limit is not None:
        rows = rows[:limit]
    records = [parse_edit(row, index) for index, row in enumerate(rows)]
    if not records:
        raise EvalDataError(f"{path} holds no records")
    schemas = sorted({r.schema for r in records})
    logger.info("loaded %d edit records from %s (schemas: %s)", len(records), path, schemas)
    return records


def parse_edit(row: dict[str, Any], index: int = 0) -> EditRecord:
    """One record, schema detected from its keys."""
    if "requested_rewrite" in row:
        return _from_rome(row, index)
    if "src" in row and "alt" in row:
        return _from_mend(row, index)
    if "prompt" in row and "target_new" in row:
        return _from_prompt_target(row, index)
    if "question" in row and "answer" in row:
        return _from_qna(row, index)
    raise EvalDataError(
        f"record {index} has keys {sorted(row)[:12]}, which match no known schema (ROME "
        "'requested_rewrite', MEND 'src'/'alt', EasyEdit/KnowEdit 'prompt'/'target_new', "
        "'question'/'answer')"
    )


def first_string(value: Any) -> str | None:
    """The first non-empty string in a possibly nested list (KnowEdit nests answer aliases;
    ROME wraps targets as ``{"str": ...}``). Shared by the training data loader."""
    while isinstance(value, list):
        if not value:
            return None
        value = value[0]
    if isinstance(value, dict):
        value = value.get("str")
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _case_id(row: dict[str, Any], index: int) -> str:
    for key in ("case_id", "case_index", "known_id"):
        if key in row:
            return str(row[key])
    return str(index)


def _from_rome(row: dict[str, Any], index: int) -> EditRecord:
    rw = row["requested_rewrite"]
    subject = str(rw.get("subject", ""))
    prompt = str(rw["prompt"]).replace("{}", subject)
    true = first_string(rw.get("target_true"))
    return EditRecord(
        case_id=_case_id(row, index),
        subject=subject,
        prompt=prompt,
        target_new=first_string(rw["target_new"]) or "",
        target_true=true,
        paraphrases=tuple(str(p) for p in row.get("paraphrase_prompts", [])),
        neighborhood=tuple((str(p), true or "") for p in row.get("neighborhood_prompts", [])),
        schema="rome",
    )


def _from_mend(row: dict[str, Any], index: int) -> EditRecord:
    neighborhood = ()
    if row.get("loc") and row.get("loc_ans"):
        neighborhood = ((str(row["loc"]), str(row["loc_ans"])),)
    rephrase = row.get("rephrase")
    return EditRecord(
        case_id=_case_id(row, index),
        subject=str(row.get("subject", "")),
        prompt=str(row["src"]),
        target_new=first_string(row["alt"]) or "",
        target_true=first_string(row.get("answers")) or first_string(row.get("pred")),
        paraphrases=(str(rephrase),) if rephrase else (),
        neighborhood=neighborhood,
        schema="mend",
    )


def _from_prompt_target(row: dict[str, Any], index: int) -> EditRecord:
    rephrase = row.get("rephrase_prompt")
    paraphrases = tuple(str(p) for p in (rephrase if isinstance(rephrase, list) else [rephrase])
                        if p)
    neighborhood: list[tuple[str, str]] = []
    if row.get("locality_prompt"):  # flat EasyEdit
        answer = first_string(row.get("locality_ground_truth")) or ""
        neighborhood.append((str(row["locality_prompt"]), answer))
    locality = row.get("locality")
    if isinstance(locality, dict):  # KnowEdit
        for items in locality.values():
            for item in items if isinstance(items, list) else []:
                answer = first_string(item.get("ground_truth"))
                if item.get("prompt") and answer:
                    neighborhood.append((str(item["prompt"]), answer))
    schema = "easyedit" if "locality_prompt" in row else "knowedit"
    return EditRecord(
        case_id=_case_id(row, index),
        subject=str(row.get("subject", "")),
        prompt=str(row["prompt"]),
        target_new=first_string(row["target_new"]) or "",
        target_true=first_string(row.get("ground_truth")),
        paraphrases=paraphrases,
        neighborhood=tuple(neighborhood),
        schema=schema,
    )


def _from_qna(row: dict[str, Any], index: int) -> EditRecord:
    extra = row.get("qna_question")
    return EditRecord(
        case_id=_case_id(row, index),
        subject=str(row.get("subject", "")),
        prompt=str(row["question"]),
        target_new=str(row["answer"]),
        target_true=None,
        paraphrases=(str(extra),) if extra else (),
        neighborhood=(),
        schema="qna",
    )


def last_sentence(prompt: str) -> str:
    """ROME paraphrase prompts start with an unrelated sentence; Larimar's evaluation keeps the
    part after the last '. ' (as its released counterfact_eval.py does)."""
    return prompt.split(". ")[-1].strip() or prompt


def load_text_lines(path: str | Path, limit: int | None = None) -> list[str]:
    """Non-empty, non-heading lines of a WikiText file (CRLF or LF), the first ``limit``."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read text file {path}: {exc}") from exc
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip() and not _WIKI_HEADING.match(ln)]
    if not lines:
        raise EvalDataError(f"{path} holds no text lines")
    return lines[:limit] if limit is not None else lines
