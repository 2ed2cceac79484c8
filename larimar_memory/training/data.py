"""Training data: any text → chunks of at most ``chunk_tokens`` decoder tokens → episodes.

The paper cuts WikiText into 64-token chunks and writes episodes of 16 chunks to memory; the
same chunker here also takes knowledge-editing fact files (one sentence per prompt + answer) and,
when online, Hugging Face datasets. Evaluation splits are refused by name so that no recipe can
train on what the benchmarks later measure.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset

from ..errors import LarimarError
from ..eval.data import first_string, last_sentence, parse_edit, read_json_records
from .config import DATA_ENV, DataConfig, FactsSource, HFSource, ProfilesSource, TextSource
from .profiles import Profile, make_profiles

logger = logging.getLogger(__name__)


class TrainingDataError(LarimarError, ValueError):
    """A training source is missing, unreadable, empty, or an evaluation split."""


class Tokenizer(Protocol):
    """The slice of a Hugging Face tokenizer the chunker uses."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...

    def decode(self, ids: Sequence[int], **kwargs: Any) -> str: ...


# --------------------------------------------------------------------------------------------
# the evaluation-file guard
# --------------------------------------------------------------------------------------------

#: Files of ../shared/data (and their usual full-size originals) that only evaluation may read.
EVALUATION_FILES = frozenset(
    {
        "counterfact-val.json",
        "counterfact-edit.json",
        "counterfact.json",
        "counterfact_portability_gpt4.json",
        "counterfact_distracting_neighbor.json",
        "counterfact_subject_replace.json",
        "counterfact_qna.json",
        "known_1000.json",
        "zsre_mend_eval.json",
        "zsre_mend_eval_portability_gpt4.json",
        "zsre_inverse_relation.json",
        "zsre_subject_replace.json",
        "zsre_text_completion_prompts.json",
        "knowedit_zsre-test-all.json",
        "wiki_counterfact_test_cf-generate-10.jsonl",
        "wikibio-test-all.json",
        "test.txt",
        "valid.txt",
        "wiki.test.raw",
        "wiki.valid.raw",
        "wiki.test.tokens",
        "wiki.valid.tokens",
    }
)
#: WikiText validation files a text source may train on with ``allow_validation_split``
VALIDATION_TEXT_FILES = frozenset({"valid.txt", "wiki.valid.raw", "wiki.valid.tokens"})
#: Name tokens that mark a split as evaluation-only, e.g. ``foo-test.json``, ``bar_eval.jsonl``.
_EVAL_TOKENS = frozenset({"test", "eval", "val", "valid", "validation", "dev", "edit"})
_SPLIT_NAME = re.compile(r"[-_. ]+")


def is_evaluation_file(path: str | Path) -> bool:
    """True when the file name is a known evaluation file or names an evaluation split."""
    name = Path(path).name.lower()
    if name in EVALUATION_FILES:
        return True
    return bool(_EVAL_TOKENS.intersection(_SPLIT_NAME.split(name)))


def check_training_file(path: str | Path, allow_validation: bool = False) -> None:
    """Refuse evaluation files: training on them would leak into every reported metric.
    ``allow_validation`` lets the WikiText validation files through (``VALIDATION_TEXT_FILES``),
    never a test file."""
    if allow_validation and Path(path).name.lower() in VALIDATION_TEXT_FILES:
        return
    if is_evaluation_file(path):
        raise TrainingDataError(
            f"{Path(path).name} is an evaluation file (CounterFact val/edit, zsRE eval, test or "
            f"validation splits are kept for measuring); list a training split instead, e.g. "
            f"counterfact/counterfact-train.json or zsre/zsre_mend_train-1k.json"
        )


def check_training_split(split: str) -> None:
    """The same guard for a Hugging Face split name."""
    tokens = set(_SPLIT_NAME.split(split.lower().replace("[", " ").replace(":", " ")))
    if tokens & _EVAL_TOKENS:
        raise TrainingDataError(
            f"split {split!r} is an evaluation split; train on 'train' (or a slice of it)"
        )


# --------------------------------------------------------------------------------------------
# reading sources into document groups (a group is held out or trained on as a whole)
# --------------------------------------------------------------------------------------------

_WIKI_HEADING = re.compile(r"^\s*=+ .* =+\s*$")


def read_text(path: Path, allow_validation: bool = False) -> list[list[str]]:
    """Paragraphs of a text file (WikiText headings dropped), one group per paragraph."""
    check_training_file(path, allow_validation)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TrainingDataError(f"cannot read text source {path}: {exc}") from exc
    return [[line.strip()] for line in lines if line.strip() and not _WIKI_HEADING.match(line)]


def _join(prompt: str, answer: str | None) -> str | None:
    if answer is None:
        return None
    return f"{prompt.rstrip()} {answer}".strip()


def fact_sentences(record: dict[str, Any], answers: str = "both") -> list[str]:
    """Fact sentences (prompt + answer) of one record, whichever benchmark schema it uses.

    Schemas: flat EasyEdit CounterFact and KnowEdit (``prompt``, ``target_new``,
    ``ground_truth``), ROME CounterFact (``requested_rewrite``), MEND zsRE (``src``, ``alt``,
    ``answers``), WikiBio (``text``, ``labels``).
    """
    if "requested_rewrite" in record:
        rw = record["requested_rewrite"]
        prompt = str(rw["prompt"]).format(rw.get("subject", ""))
        new, true = first_string(rw.get("target_new")), first_string(rw.get("target_true"))
    elif "src" in record:
        prompt, new, true = str(record["src"]), first_string(record.get("alt")), first_string(
            record.get("answers") or record.get("pred")
        )
    elif "prompt" in record:
        prompt = str(record["prompt"])
        if "{}" in prompt and "subject" in record:
            prompt = prompt.format(record["subject"])
        new = first_string(record.get("target_new"))
        true = first_string(record.get("ground_truth") or record.get("target_true"))
    elif "text" in record:
        texts = (first_string(record.get("text")), first_string(record.get("labels")))
        return [t for t in texts if t]
    else:
        raise TrainingDataError(
            f"unknown fact record schema with keys {sorted(record)}; expected prompt/target_new, "
            f"requested_rewrite, src/alt or text"
        )
    picked = {"new": [new], "true": [true], "both": [new, true]}[answers]
    out: list[str] = []
    for answer in picked:
        sentence = _join(prompt, answer)
        if sentence and sentence not in out:
            out.append(sentence)
    return out


def read_facts(path: Path, answers: str = "both") -> list[list[str]]:
    """One group per record: its fact sentences stay together in train or held-out."""
    groups = [fact_sentences(r, answers) for r in _read_records(path)]
    return [g for g in groups if g]


def _read_records(path: Path) -> list[dict[str, Any]]:
    check_training_file(path)
    try:
        return read_json_records(path)
    except LarimarError as exc:
        raise TrainingDataError(f"cannot read fact source {path}: {exc}") from exc


def fact_questions(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(fact sentence, question, answer)`` for each paraphrase prompt of a record, with both
    its new and its true answer: the paraphrase asks for what that fact sentence states."""
    try:
        edit = parse_edit(record)
    except LarimarError:
        return []
    out = []
    for answer in (edit.target_new, edit.target_true):
        if not answer:
            continue
        fact = _join(edit.prompt, answer)
        out += [(fact, last_sentence(p), answer) for p in edit.paraphrases if fact]
    return out


def read_questions(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Questions about the facts of a file, keyed by fact sentence."""
    questions: dict[str, list[tuple[str, str]]] = {}
    for record in _read_records(path):
        for fact, question, answer in fact_questions(record):
            questions.setdefault(fact, []).append((question, answer))
    return questions


def read_hf(source: HFSource) -> list[list[str]]:
    """Rows of a Hugging Face dataset split (WikiText-103 for the paper's recipe)."""
    check_training_split(source.split)
    try:
        import datasets  # optional
    except ImportError as exc:
        raise TrainingDataError(
            f"source {source.name}:{source.split} needs the optional 'datasets' package "
            f"(pip install datasets) and access to the Hugging Face hub; offline, list a local "
            f"text file instead"
        ) from exc
    try:
        ds = datasets.load_dataset(source.name, source.subset, split=source.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types when offline
        raise TrainingDataError(
            f"cannot load Hugging Face dataset {source.name}/{source.subset}:{source.split}: {exc}"
        ) from exc
    rows: Iterable[Any] = ds[source.text_field]
    return [[r.strip()] for r in rows if isinstance(r, str) and r.strip()
            and not _WIKI_HEADING.match(r)]


def profiles_of(source: ProfilesSource) -> tuple[Profile, ...]:
    """The profiles a source describes, drawn from its seed once (the chunks and the questions
    both read them)."""
    return _profiles(source.count, source.seed, source.facts_per_profile, source.persons,
                     source.family_share, source.made_up_share)


@functools.lru_cache(maxsize=4)
def _profiles(count: int, seed: int, facts_per_profile: tuple[int, int],
              persons: tuple[str, ...], family_share: float, made_up_share: float
              ) -> tuple[Profile, ...]:
    return tuple(make_profiles(count, seed, facts_per_profile, persons, family_share,
                               made_up_share))


def read_source(
    cfg: DataConfig, source: TextSource | FactsSource | ProfilesSource | HFSource
) -> list[list[str]]:
    """Document groups of one configured source (a profile is one group: held out whole)."""
    if isinstance(source, HFSource):
        return read_hf(source)
    if isinstance(source, ProfilesSource):
        return [[f.text for f in p.facts] for p in profiles_of(source)]
    path = cfg.resolve(source.path)
    check_training_file(path, isinstance(source, TextSource) and source.allow_validation_split)
    if not path.is_file():
        raise TrainingDataError(
            f"training source {path} does not exist; set data.root, ${DATA_ENV} or an "
            f"absolute path (data root now: {cfg.resolve_root()})"
        )
    if isinstance(source, FactsSource):
        return read_facts(path, source.answers)
    return read_text(path, source.allow_validation_split)


# --------------------------------------------------------------------------------------------
# chunking
# --------------------------------------------------------------------------------------------


def chunk_texts(
    texts: Sequence[str], tokenizer: Tokenizer, chunk_tokens: int, min_tokens: int = 1,
    batch: int = 512,
) -> list[list[str]]:
    """Cut each text into pieces of at most ``chunk_tokens`` decoder tokens.

    Returns one list of chunk strings per input text. Cutting on token ids and decoding back
    keeps every chunk within the decoder's budget; the encoder then sees the same chunk text.
    """
    out: list[list[str]] = []
    for start in range(0, len(texts), batch):
        part = list(texts[start : start + batch])
        ids_list = tokenizer(part, add_special_tokens=False, verbose=False)["input_ids"]
        for ids in ids_list:
            pieces = []
            for i in range(0, len(ids), chunk_tokens):
                window = ids[i : i + chunk_tokens]
                if len(window) < min_tokens:
                    continue
                text = tokenizer.decode(window, skip_special_tokens=True).strip()
                if text:
                    pieces.append(text)
            out.append(pieces)
    return out


@dataclass
class ChunkSplit:
    """Training and held-out chunks (strings)."""

    train: list[str]
    heldout: list[str]
    #: questions about training facts, keyed by fact sentence (sources with ``questions: true``)
    questions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: the other facts of the same person, keyed by fact sentence (profile sources): what a
    #: question's memory block holds besides its own fact
    neighbours: dict[str, list[str]] = field(default_factory=dict)


def build_chunks(cfg: DataConfig, tokenizer: Tokenizer, seed: int = 0) -> ChunkSplit:
    """Read every source, chunk it, and hold out whole groups for validation."""
    groups: list[list[str]] = []
    questions: dict[str, list[tuple[str, str]]] = {}
    neighbours: dict[str, list[str]] = {}
    for source in cfg.sources:
        got = read_source(cfg, source)
        logger.info("data: %s → %d groups", getattr(source, "path", None) or source, len(got))
        groups.extend(got)
        if isinstance(source, FactsSource) and source.questions:
            for fact, asked in read_questions(cfg.resolve(source.path)).items():
                questions.setdefault(fact, []).extend(asked)
        if isinstance(source, ProfilesSource):
            for profile in profiles_of(source):
                texts = [f.text for f in profile.facts]
                for f in profile.facts:
                    questions.setdefault(f.text, []).extend((q, f.answer) for q in f.questions)
                    neighbours[f.text] = [t for t in texts if t != f.text]
    if not groups:
        raise TrainingDataError("the training sources hold no text")
    random.Random(seed).shuffle(groups)
    heldout: list[str] = []
    train: list[str] = []
    cap = None if cfg.max_chunks is None else cfg.heldout_chunks + cfg.max_chunks
    step = 1024  # groups chunked per round; a capped run stops reading early
    for start in range(0, len(groups), step):
        part = groups[start : start + step]
        pieces = iter(chunk_texts([t for g in part for t in g], tokenizer, cfg.chunk_tokens,
                                  cfg.min_chunk_tokens))
        for g in part:
            chunks = [c for _ in g for c in next(pieces)]
            (heldout if len(heldout) < cfg.heldout_chunks else train).extend(chunks)
        if cap is not None and len(heldout) + len(train) >= cap:
            break
    if cfg.max_chunks is not None:
        train = train[: cfg.max_chunks]
    need = cfg.episode_size * cfg.batch_size
    if len(train) < need:
        raise TrainingDataError(
            f"only {len(train)} training chunks, fewer than one batch of "
            f"data.batch_size × data.episode_size = {need}; add sources or lower those"
        )
    held = set(heldout)
    questions = {fact: asked for fact, asked in questions.items() if fact not in held}
    neighbours = {fact: others for fact, others in neighbours.items() if fact not in held}
    logger.info("data: %d training chunks, %d held out, %d facts with questions",
                len(train), len(heldout), len(questions))
    return ChunkSplit(train=train, heldout=heldout, questions=questions, neighbours=neighbours)


def read_ppl_chunks(
    path: Path, tokenizer: Tokenizer, chunk_tokens: int, max_chunks: int
) -> list[str]:
    """Chunks of a validation text (WikiText-2 valid) for no-memory perplexity; evaluation
    files are fine here because this is evaluation."""
    if not path.is_file():
        raise TrainingDataError(
            f"perplexity file {path} does not exist; set eval.ppl_file (or null to skip)"
        )
    paragraphs = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not _WIKI_HEADING.match(line)
    ]
    out: list[str] = []
    for start in range(0, len(paragraphs), 64):
        for pieces in chunk_texts(paragraphs[start : start + 64], tokenizer, chunk_tokens, 8):
            out.extend(pieces)
        if len(out) >= max_chunks:
            break
    return out[:max_chunks]


# --------------------------------------------------------------------------------------------
# datasets and collation
# --------------------------------------------------------------------------------------------


class ChunkDataset(Dataset[str]):
    """Chunks as a map-style dataset; the DataLoader's batch becomes B episodes of N."""

    def __init__(self, chunks: Sequence[str]) -> None:
        self.chunks = list(chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, idx: int) -> str:
        return self.chunks[idx]


class EpisodeCollator:
    """Tokenises a flat batch of ``B·N`` chunks for the encoder (the text written) and the
    decoder (the text reconstructed) with the model's own ``tokenize``, shaped (B, N, T).

    With ``questions`` and ``tokenize_answers``, each chunk that has questions gets one of them
    (a chat turn with probability ``chat_share``) as ``batch["questions"]``. With
    ``facts_per_question`` above 1, each question reads a memory block of R facts (R drawn per
    batch from the range): its own fact, at a random place, among the other facts of the same
    person (``neighbours``) and then other chunks of the batch, as `Larimar.ask` reads the
    k facts a question ranks first."""

    def __init__(
        self,
        tokenize: Callable[[list[str]], dict[str, torch.Tensor]],
        episode_size: int,
        questions: dict[str, list[tuple[str, str]]] | None = None,
        tokenize_answers: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
        | None = None,
        chat_share: float = 0.5,
        max_question_tokens: int = 64,
        seed: int = 0,
        neighbours: dict[str, list[str]] | None = None,
        facts_per_question: tuple[int, int] = (1, 1),
    ) -> None:
        self.tokenize = tokenize
        self.episode_size = episode_size
        self.questions = questions or {}
        self.tokenize_answers = tokenize_answers
        self.chat_share = chat_share
        self.max_question_tokens = max_question_tokens
        self.neighbours = neighbours or {}
        self.facts_per_question = facts_per_question
        self.rng = random.Random(seed)

    def __call__(self, texts: list[str]) -> dict[str, Any]:
        n = self.episode_size
        b = len(texts) // n
        if b == 0:
            raise TrainingDataError(f"a batch of {len(texts)} chunks is smaller than one episode")
        texts = list(texts[: b * n])
        flat = self.tokenize(texts)  # each (B·N, T)
        batch: dict[str, Any] = {k: v.view(b, n, -1) for k, v in flat.items()}
        batch["texts"] = [texts[i * n : (i + 1) * n] for i in range(b)]
        if self.questions and self.tokenize_answers is not None:
            asked = [(i, self.rng.choice(self.questions[t])) for i, t in enumerate(texts)
                     if t in self.questions]
            if asked:
                batch["questions"] = self._question_batch(texts, asked)
        return batch

    def _question_batch(self, texts: list[str], asked: list[tuple[int, tuple[str, str]]]) -> Any:
        from ..model import QuestionBatch

        assert self.tokenize_answers is not None
        ids, mask, labels = self.tokenize_answers(
            [q for _, (q, _) in asked], [a for _, (_, a) in asked],
            [self.rng.random() < self.chat_share for _ in asked],
            self.max_question_tokens,
        )
        questions = QuestionBatch(index=torch.tensor([i for i, _ in asked]), input_ids=ids,
                                  attention_mask=mask, labels=labels)
        rows = self.rng.randint(*self.facts_per_question)
        if rows > 1:
            others = [self._others(texts, i, rows - 1) for i, _ in asked]
            encoded = self.tokenize([t for row in others for t in row])
            questions.others_input_ids = encoded["enc_input_ids"]
            questions.others_attention_mask = encoded["enc_attention_mask"]
            questions.position = torch.tensor([self.rng.randint(0, rows - 1) for _ in asked])
        return questions

    def _others(self, texts: list[str], index: int, count: int) -> list[str]:
        """``count`` facts to read with ``texts[index]``: its person's other facts, then
        other chunks of the batch (repeated when the batch is too small)."""
        own = texts[index]
        pool = list(self.neighbours.get(own, []))
        self.rng.shuffle(pool)
        rest = [t for t in texts if t != own and t not in pool] or [own]
        while len(pool) < count:
            pool.append(self.rng.choice(rest))
        return pool[:count]


class TextCollator:
    """Decoder-only batches (n, T), framed like the training targets, for no-memory perplexity."""

    def __init__(
        self, tokenize_targets: Callable[[list[str], int], tuple[torch.Tensor, torch.Tensor]],
        max_tokens: int,
    ) -> None:
        self.tokenize_targets = tokenize_targets
        self.max_tokens = max_tokens

    def __call__(self, texts: list[str]) -> dict[str, Any]:
        ids, mask = self.tokenize_targets(list(texts), self.max_tokens)
        return {"lm_input_ids": ids, "lm_attention_mask": mask, "texts": list(texts)}
