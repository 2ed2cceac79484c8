"""Token-code latents (``codec.kind="token-codes"``) on tiny random models: the codebook, the
codec, the memory block the decoder reads, and their round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from larimar_memory.model import LarimarConfig, LarimarModel
from larimar_memory.testing import tiny_test_model

TEXTS = ["Paris is the capital of France.", "Bob drinks tea.", "x", "Ada wrote code in 1843."]
P, D = 16, 16


def _model(decoder: str = "llama", **overrides: object) -> LarimarModel:
    fields = {"latent": "token-codes", "num_latent_tokens": P, "latent_token_dim": D,
              "max_text_tokens": P - 1, **overrides}
    return tiny_test_model(decoder, **fields).eval()


@pytest.fixture(params=["gpt2", "llama"])
def model(request: pytest.FixtureRequest) -> LarimarModel:
    return _model(request.param)


def test_config_keeps_text_within_the_slots() -> None:
    with pytest.raises(ValidationError, match="max_text_tokens"):
        LarimarConfig(latent="token-codes", num_latent_tokens=8, max_text_tokens=8)
    assert LarimarConfig(latent="token-codes", num_latent_tokens=8, max_text_tokens=7)


def test_every_slot_snaps_back_to_its_token(model: LarimarModel) -> None:
    batch = model.codec.tokenize(TEXTS)
    z = model.encode(TEXTS)
    assert z.shape == (len(TEXTS), P * D)
    tokens, present = model.codec.codebook.nearest_tokens(z.view(len(TEXTS), P, D))
    rows = zip(batch["input_ids"], batch["attention_mask"], strict=True)
    for row, (ids, mask) in enumerate(rows):
        n = int(mask.sum())
        assert tokens[row, :n].tolist() == ids[:n].tolist()
        assert ids[n - 1] == model.decoder.stop_token_ids[0]  # EOS closes every text
        assert present[row, :n].all() and not present[row, n:].any()
    noisy = z + 0.05 * torch.randn_like(z)  # a readout with interference snaps to the same tokens
    again, _ = model.codec.codebook.nearest_tokens(noisy.view(len(TEXTS), P, D))
    assert torch.equal(again[present], tokens[present])


_INDEXED = _model("llama")


def _full_search(slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: every slot scored against every code."""
    book = _INDEXED.codec.codebook.vocabulary_codes()
    scores = 2.0 * slots.reshape(-1, D) @ book.T - book.pow(2).sum(dim=1)
    best, ids = scores.max(dim=-1)
    return ids, best > 0


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), noise=st.sampled_from([0.0, 0.01, 0.1, 0.5, 2.0]),
       duplicate=st.booleans())
def test_code_index_gives_the_full_search_answer(seed: int, noise: float,
                                                 duplicate: bool) -> None:
    """Slots at, near or far from codes (some empty, some between two identical codes): the
    indexed reading equals scoring every slot against the whole vocabulary."""
    book = _INDEXED.codec.codebook
    codes = book.vocabulary_codes()
    g = torch.Generator().manual_seed(seed)
    truth = torch.randint(codes.shape[0], (5, P), generator=g)
    slots = codes[truth] + noise * torch.randn(5, P, D, generator=g)
    slots[:, -2:] = 0.0  # empty slots
    ids, present = book.nearest_tokens(slots)
    ref_ids, ref_present = _full_search(slots)
    assert torch.equal(present.reshape(-1), ref_present)
    assert torch.equal(ids.reshape(-1)[ref_present], ref_ids[ref_present])
    if duplicate:  # two tokens with one code: a tie the index must leave to the search
        from larimar_memory.token_codes import CodeIndex

        twin = codes.detach().double().numpy().copy()
        twin[1] = twin[0]
        _, _, answered = CodeIndex(twin).nearest(twin[:2] + 1e-3)
        assert not answered.any()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.0, 1.5))
def test_slots_shorter_than_half_the_shortest_code_are_empty_without_a_search(
        seed: int, scale: float) -> None:
    """Slots of any direction around half the shortest code's length: the ones below it are
    empty without scoring the vocabulary, and every answer is the full search's."""
    book = _INDEXED.codec.codebook
    shortest = float(book.vocabulary_codes().norm(dim=1).min())
    g = torch.Generator().manual_seed(seed)
    slots = torch.randn(3, P, D, generator=g)
    slots = slots / slots.norm(dim=-1, keepdim=True) * scale * shortest
    slots[0, :4] = book.vocabulary_codes()[:4]  # and some tokens
    searched: list[int] = []
    scores = type(book)._scores
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(book), "_scores",
                      lambda self, flat: searched.append(flat.shape[0]) or scores(self, flat))
        ids, present = book.nearest_tokens(slots)
    ref_ids, ref_present = _full_search(slots)
    assert torch.equal(present.reshape(-1), ref_present)
    assert torch.equal(ids.reshape(-1)[ref_present], ref_ids[ref_present])
    if scale < 0.49:
        assert sum(searched) <= 4 and not present.reshape(-1)[4:].any()


def test_soft_embeddings_equal_the_dense_top_k_in_values_and_gradients() -> None:
    """Candidates found without autograd, their scores recomputed with it: the same mixed
    embeddings and the same gradients as a top-k over every token's score."""
    from larimar_memory.token_codes import TokenCodebook

    table = torch.nn.Embedding(300, 32)
    book = TokenCodebook(table, 8, top_k=4)
    g = torch.Generator().manual_seed(0)
    slots = book.vocabulary_codes()[torch.randint(300, (2, 5), generator=g)]
    slots = (slots + 0.3 * torch.randn(2, 5, 8, generator=g)).requires_grad_(True)
    slots.data[:, -1] = 0.0  # an empty slot
    mixed, present = book.soft_embeddings(slots)
    grads = torch.autograd.grad(mixed.pow(2).sum(), [slots, book.proj, book.log_temperature])

    codes = (table.weight - book.center) @ book.proj
    top, index = (2.0 * slots @ codes.T - codes.pow(2).sum(dim=1)).topk(4, dim=-1)
    weights = torch.softmax(top / book.log_temperature.exp(), dim=-1)
    dense = (weights.unsqueeze(-1) * table(index)).sum(dim=-2)
    dense_grads = torch.autograd.grad(dense.pow(2).sum(),
                                      [slots, book.proj, book.log_temperature])
    assert torch.equal(present, top[..., 0] > 0) and not present[:, -1].any()
    assert torch.allclose(mixed, dense, atol=1e-5)
    for got, want in zip(grads, dense_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-4)


def test_a_token_code_is_its_vocabulary_code_when_the_lm_scales_embeddings() -> None:
    """Gemma multiplies its input embeddings by √h in the forward: a token's code must still
    be computed from the table, or text would encode to codes no token has."""
    from larimar_memory.token_codes import TokenCodebook

    class ScaledEmbedding(torch.nn.Embedding):
        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return super().forward(ids) * 32**0.5

    book = TokenCodebook(ScaledEmbedding(300, 32), 8)
    ids = torch.tensor([[3, 7, 299]])
    assert torch.allclose(book.codes(ids), book.vocabulary_codes()[ids], atol=1e-6)
    found, present = book.nearest_tokens(book.codes(ids))
    assert torch.equal(found, ids) and present.all()


def test_slots_holding_codes_are_answered_by_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = TEXTS
    readouts = _INDEXED.encode_facts(texts)  # the rows a fact is written as
    searched: list[int] = []
    addmm = torch.addmm
    monkeypatch.setattr(torch, "addmm", lambda *a, **k: searched.append(a[1].shape[0]) or
                        addmm(*a, **k))
    assert _INDEXED.read_facts(readouts) == texts
    assert searched == []  # no slot needed the full search
    far = [rows + 5.0 for rows in readouts]  # nowhere near any code: searched, same answer
    _INDEXED.read_facts(far)
    assert searched
    slots = torch.cat(far).reshape(-1, P, D)
    ids, present = _INDEXED.codec.codebook.nearest_tokens(slots)
    ref_ids, ref_present = _full_search(slots)
    assert torch.equal(ids.reshape(-1)[ref_present], ref_ids[ref_present])
    assert np.array_equal(present.reshape(-1).numpy(), ref_present.numpy())


def test_long_texts_keep_their_first_tokens(model: LarimarModel) -> None:
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    assert model.text_token_counts([long])[0] > P - 1
    ids = model.codec.tokenize([long])["input_ids"][0]
    assert len(ids) == P and ids[-1] == model.decoder.stop_token_ids[0]


def test_memory_block_masks_empty_slots(model: LarimarModel) -> None:
    z = model.encode(TEXTS[:2])
    block, mask = model.decoder.conditioning.block(model.decoder.lm, z)
    pre, post = len(model.decoder.conditioning.pre), len(model.decoder.conditioning.post)
    counts = model.codec.tokenize(TEXTS[:2])["attention_mask"].sum(dim=1)
    assert block.shape[:2] == mask.shape
    assert mask.shape[1] == pre + int(counts.max()) + post  # trailing empty slots dropped
    assert mask.sum(dim=1).tolist() == [pre + int(c) + post for c in counts]
    empty, empty_mask = model.decoder.conditioning.block(model.decoder.lm, torch.zeros_like(z))
    assert empty_mask.shape[1] == pre + post  # an all-empty readout still decodes
    assert model.decode(torch.zeros_like(z), max_new_tokens=3) is not None


def test_conditioned_logits_do_not_depend_on_padding(model: LarimarModel) -> None:
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    z = model.encode(TEXTS)
    batched = model.decoder(z, ids, mask)
    assert batched.shape[:2] == ids.shape
    for i in range(len(TEXTS)):
        n = int(mask[i].sum())
        alone = model.decoder(z[i : i + 1], ids[i : i + 1, :n], mask[i : i + 1, :n])
        assert torch.allclose(batched[i, :n], alone[0], atol=1e-4)


def test_loss_on_labelled_positions_equals_the_loss_on_full_logits(model: LarimarModel) -> None:
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :4] = -100  # a question's prompt: no targets there
    z = model.encode(TEXTS + TEXTS[::-1]).reshape(len(TEXTS), -1)  # two facts per block
    logits = model.decoder(z, ids, mask)
    keep = labels[:, 1:] != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][keep], labels[:, 1:][keep])
    assert torch.allclose(model.decoder.loss(z, ids, mask, labels), expected, atol=1e-5)
    rows = torch.tensor([1, 3])
    assert torch.allclose(model.decoder(z, ids, mask, keep=rows), logits[:, rows], atol=1e-5)


def test_cached_generation_matches_full_recompute(model: LarimarModel) -> None:
    z = model.encode(["Bob drinks tea.", "Ada wrote code in 1843."])
    prompts = ["Paris is", "A much longer prompt here"]
    fast = model.decode(z, prompts, max_new_tokens=6, chat=False)
    for i, prompt in enumerate(prompts):
        ids = model.decoder._prompt(prompt, chat=False)
        for _ in range(6):
            x = torch.tensor([ids])
            logits = model.decoder(z[i : i + 1], x, torch.ones_like(x))
            ids.append(int(logits[0, -1].argmax()))
        start = len(model.decoder._prompt(prompt, chat=False))
        assert fast[i] == model.decoder._decode_row(ids[start:])


def test_chat_question_after_memory_has_no_second_system_turn() -> None:
    model = _model("llama")
    if not model.decoder.conditioning.pre:
        pytest.skip("the tiny chat template takes no system turn")
    text = model.decoder.tokenizer.decode(model.decoder._prompt("Who?", None, after_memory=True))
    assert "Who?" in text and "system" not in text


def test_gradients_reach_codebook_adapters_and_memory() -> None:
    model = _model("llama", decoder_training="lora").train()
    batch = {k: v.view(2, 2, -1) for k, v in model.tokenize(TEXTS).items()}
    losses = model.training_losses(
        batch["enc_input_ids"], batch["enc_attention_mask"],
        batch["dec_input_ids"], batch["dec_attention_mask"],
    )
    losses["total"].backward()
    codebook = model.codec.codebook
    assert codebook.proj.grad is not None and codebook.proj.grad.abs().sum() > 0
    assert codebook.log_temperature.grad is not None
    assert model.prior_memory.grad is not None
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _model("llama", decoder_training="lora")
    with torch.no_grad():
        model.codec.codebook.proj.mul_(1.5)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    model.save_pretrained(tmp_path)
    again = LarimarModel.from_pretrained(tmp_path).eval()
    z = model.encode(TEXTS)
    assert torch.equal(again.encode(TEXTS), z)
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    with torch.no_grad():
        assert torch.allclose(again.decoder(z, ids, mask), model.decoder(z, ids, mask))


def test_service_remembers_recalls_and_forgets_token_codes(tmp_path: Path) -> None:
    from larimar_memory.testing import tiny_larimar

    overrides = {"latent": "token-codes", "num_latent_tokens": 32, "latent_token_dim": D,
                 "max_text_tokens": 31}  # the tiny tokenizer spells out characters
    larimar = tiny_larimar(tmp_path / "store.sqlite3", decoder="llama", model_overrides=overrides)
    try:
        ids = larimar.remember(["Alice lives in Lisbon.", "Bob plays the cello."]).ids
        recalled = larimar.recall("Where does Alice live?")
        assert recalled.fact is not None and recalled.fact.text == "Alice lives in Lisbon."
        assert isinstance(larimar.ask("Where does Alice live?").answer, str)
        larimar.forget(ids[0])
        assert [f.text for f in larimar.list()] == ["Bob plays the cello."]
    finally:
        larimar.close()


def test_qa_term_scores_only_the_answer_from_the_asked_facts_readout() -> None:
    from larimar_memory.model import LossWeights, QuestionBatch

    model = _model("llama", num_latent_tokens=48, max_text_tokens=47)
    texts = ["Bob drinks tea.", "Ada wrote code."]
    batch = model.tokenize(texts)
    ids, mask, labels = model.decoder.tokenize_answers(["What does Bob drink?"], ["tea"],
                                                       [True], 32)
    answer = [t for t in labels[0].tolist() if t != -100]
    assert model.decoder.tokenizer.decode(answer[:-1]) == "tea"  # then EOS
    assert answer[-1] == model.decoder.stop_token_ids[0]
    questions = QuestionBatch(index=torch.tensor([0]), input_ids=ids, attention_mask=mask,
                              labels=labels)
    args = (batch["enc_input_ids"], batch["enc_attention_mask"], batch["dec_input_ids"],
            batch["dec_attention_mask"])
    losses = model.training_losses(*args, weights=LossWeights(qa=1.0), questions=questions)
    assert losses["qa"].item() > 0
    only = model.training_losses(
        *args, weights=LossWeights(recon_memory=0, recon_direct=0, kl=0, lm=0, qa=1.0),
        questions=questions,
    )
    assert only["qa"].item() > 0 and torch.allclose(only["total"], only["qa"])


def test_copy_bias_favours_continuing_the_readout() -> None:
    """Half the bias on every readout token, all of it on the token that follows the previous
    one in the readout inside a word; rows without a readout token are untouched."""
    from larimar_memory.decoder import CopyBias

    bias = CopyBias([[5, 7, 9, 3], []], 4.0, torch.device("cpu"), lambda t: t == 3)
    logits = torch.zeros(2, 12)
    first = bias(logits, None)
    assert first[0, [5, 7, 9, 3]].tolist() == [2.0] * 4 and first[0].sum() == 8.0
    assert first[1].abs().sum() == 0
    after_seven = bias(logits, torch.tensor([7, 7]))
    assert after_seven[0, 9] == 6.0 and after_seven[0, 5] == 2.0 and after_seven[0, 7] == 2.0
    assert after_seven[1].abs().sum() == 0
    after_nine = bias(logits, torch.tensor([9, 9]))  # 3 starts a word: not pushed
    assert after_nine[0, 3] == 2.0


def test_copy_bias_pushes_nothing_across_facts_and_leaves_stopping_to_the_lm() -> None:
    """Facts read together are separated by -1: the first token of the next fact is not a
    continuation of the last one. Stop tokens get the readout's half bias, so the bias never
    makes an answer run on instead of ending."""
    from larimar_memory.decoder import CopyBias

    bias = CopyBias([[5, 7, -1, 9, 3]], 4.0, torch.device("cpu"), lambda t: t == 3, stops=[11])
    logits = torch.zeros(1, 12)
    after_seven = bias(logits, torch.tensor([7]))
    assert after_seven[0, 9] == 2.0  # the next fact's first token: the base bonus only
    assert after_seven[0, 11] == 2.0 and after_seven[0, 0] == 0.0
    assert bias(logits, torch.tensor([5]))[0, 7] == 6.0  # inside a fact: pushed


def test_copy_bias_makes_answers_spell_the_readout(model: LarimarModel) -> None:
    """A large copy bias makes even an untrained decoder answer in the readout's tokens; 0
    changes nothing."""
    text = "Ada wrote code in 1843."
    z = model.encode_facts([text])[0]
    context = model.memory_context([z])
    plain = model.decode(context, prompts=["Who wrote code?"], max_new_tokens=6)
    assert model.decode(context, prompts=["Who wrote code?"], max_new_tokens=6,
                        copy_bias=0.0) == plain
    spelled = model.decode(context, prompts=["Who wrote code?"], max_new_tokens=6,
                           copy_bias=1e4)[0]
    readout = model.decoder.conditioning.readout_tokens(context)[0]
    emitted = model.decoder.tokenizer(spelled, add_special_tokens=False)["input_ids"]
    assert emitted and set(emitted) <= set(readout)


def test_stored_spelling_cuts_invented_word_endings_only() -> None:
    """A word begun from the readout (any case, any token boundaries) may only go on as a
    readout word goes on; once it is a whole readout word, only a new word, punctuation or a
    stop may follow. Words not begun from memory, and rows without a readout, are free."""
    from larimar_memory.decoder import StoredSpelling, WordPieces

    vocab = ["<eos>", " oat", " milk", "meal", "Oat", "m", "ilk", ".", " chess", "club",
             " club", "o", "at", " tea", "s"]
    pieces = WordPieces(lambda t: vocab[t], len(vocab))
    rule = StoredSpelling(["I take oat milk.\nMy chess club", ""], pieces, torch.device("cpu"))
    logits = torch.zeros(2, len(vocab))
    pieces_at = {t for t, text in enumerate(vocab) if text[:1].isalnum()}

    def banned(out: torch.Tensor, row: int) -> set[int]:
        return {t for t in range(len(vocab)) if out[row, t] == float("-inf")}

    assert banned(rule(logits, None), 0) == set()
    after_oat = rule(logits, torch.tensor([4, 4]))  # "Oat": the whole word "oat" is said
    assert banned(after_oat, 0) == pieces_at and banned(after_oat, 1) == set()
    rule = StoredSpelling(["I take oat milk.\nMy chess club"], pieces, torch.device("cpu"))
    after_o = rule(logits[:1], torch.tensor([11]))  # "o": "oat" begun, "at" finishes it
    assert banned(after_o, 0) == pieces_at - {12}
    assert banned(rule(logits[:1], torch.tensor([12])), 0) == pieces_at  # "oat" is whole
    assert banned(rule(logits[:1], torch.tensor([13])), 0) == set()  # " tea": not from memory
    assert banned(rule(logits[:1], torch.tensor([8])), 0) == pieces_at  # " chess" + "club" cut


def test_stored_spelling_keeps_a_word_going_where_the_lm_goes_on() -> None:
    """Where the LM's first choice continues a word begun from memory but is cut, the word goes
    on as stored (case too) rather than ending: "h" + "eir" + "loom", not "h" + "%" (the
    LM's second choice); where its first choice ends the word, ending stays free."""
    from larimar_memory.decoder import StoredSpelling, WordPieces

    vocab = ["<eos>", " h", "ior", "%", "eir", "EIR", "loom", " tomatoes"]
    pieces = WordPieces(lambda t: vocab[t], len(vocab))
    rule = StoredSpelling(["I grow heirloom tomatoes."], pieces, torch.device("cpu"))
    logits = torch.tensor([[0.0, 0.0, 9.0, 8.0, 1.0, 2.0, 0.0, 0.0]])  # "ior", then "%"
    out = rule(logits, torch.tensor([1]))
    assert torch.isfinite(out[0]).tolist() == [t == 4 for t in range(len(vocab))]
    rule = StoredSpelling(["I grow heirloom tomatoes."], pieces, torch.device("cpu"))
    ends = torch.tensor([[0.0, 0.0, 1.0, 9.0, 0.0, 0.0, 0.0, 0.0]])  # "%" first: the LM ends it
    assert int(rule(ends, torch.tensor([1])).argmax()) == 3


def test_spell_as_stored_changes_nothing_off(model: LarimarModel) -> None:
    """Off (the decoder's default) decodes exactly as before; on, an answer still comes back."""
    z = model.encode_facts(["Ada wrote code in 1843."])[0]
    context = model.memory_context([z])
    plain = model.decode(context, prompts=["Who wrote code?"], max_new_tokens=6)
    assert model.decode(context, prompts=["Who wrote code?"], max_new_tokens=6,
                        spell_as_stored=False) == plain
    spelled = model.decode(context, prompts=["Who wrote code?"], max_new_tokens=6,
                           spell_as_stored=True)
    assert len(spelled) == 1 and isinstance(spelled[0], str)


_PIECES = ["<eos>", " ", ".", "-", "a", "b", "c", "ab", "ba", "abc", "ca", " a", " b", " ab",
           " ca", "A", "Ab", " Ba", "C"]


@settings(max_examples=60, deadline=None)
@given(stored=st.lists(st.sampled_from(["ab", "abc", "ba", "cab", "a", "bca"]), min_size=1,
                       max_size=4),
       seed=st.integers(0, 2**16))
def test_stored_spelling_never_lets_a_word_begun_from_memory_leave_it(stored: list[str],
                                                                       seed: int) -> None:
    """Whatever the LM prefers (random logits), a word that is the start of a stored word
    when a word piece follows it is still the start of a stored word after it; a word that
    was not begun from memory is never constrained."""
    import re

    from larimar_memory.decoder import StoredSpelling, WordPieces

    pieces = WordPieces(lambda t: _PIECES[t], len(_PIECES))
    rule = StoredSpelling([" ".join(stored)], pieces, torch.device("cpu"))
    words = {w.lower() for w in stored}
    generator = torch.Generator().manual_seed(seed)
    text, previous = "", None
    for _ in range(12):
        logits = rule(torch.randn(1, len(_PIECES), generator=generator), previous)
        token = int(torch.argmax(logits[0]))
        before = (re.findall(r"[^\W_]+$", text.lower()) or [""])[0]
        text += _PIECES[token]
        after = (re.findall(r"[^\W_]+$", text.lower()) or [""])[0]
        begun = before and any(w.startswith(before) for w in words)
        if begun and _PIECES[token][:1].isalnum():
            assert any(w.startswith(after) for w in words), (stored, text)
        elif not begun:
            assert torch.isfinite(logits).all()  # nothing was cut
        previous = torch.tensor([token])


def test_readout_drafts_continue_the_fact_the_answer_ends_like() -> None:
    """The answer so far is matched as text (its first word is tokenized unlike the same word
    inside the fact); the draft is the fact's next tokens, then stopping at its end."""
    from larimar_memory.decoder import ReadoutDrafts

    drafts = ReadoutDrafts(["I live in Porto.", "My dog is called Rex."],
                           lambda text: [ord(c) for c in text], stop=0, length=4)
    assert drafts.after("Port") == [ord("o"), ord("."), 0]
    assert drafts.after(" Rex") == [ord("."), 0]
    assert drafts.after("in Port") == [ord("o"), ord("."), 0]
    assert drafts.after("I live") == [ord(c) for c in " in "]  # cut at length, no stop
    assert drafts.after("Lisbon") == []


@pytest.mark.parametrize("right", [0, 1, 2, 6])
def test_drafted_decoding_answers_as_token_by_token_does(model: LarimarModel,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         right: int) -> None:
    """Drafts right for ``right`` tokens then wrong: the same greedy answer as without drafts
    (the rejected drafts' cache, mask and positions are rolled back), in fewer LM calls when
    the drafts are right."""
    from larimar_memory.decoder import ReadoutDrafts

    z = model.memory_context([model.encode_facts(["Ada wrote code in 1843."])[0]])
    monkeypatch.setattr(ReadoutDrafts, "after", lambda self, said: [])
    lm = model.decoder.lm
    calls: list[int] = []
    forward = type(lm).forward
    monkeypatch.setattr(type(lm), "forward",
                        lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    ids: list[int] = []
    pick = __import__("larimar_memory.decoder", fromlist=["_pick"])._pick

    def spy(logits: torch.Tensor, do_sample: bool, temperature: float) -> torch.Tensor:
        token = pick(logits, do_sample, temperature)
        ids.append(int(token[0]))
        return token

    monkeypatch.setattr("larimar_memory.decoder._pick", spy)
    plain = model.decode(z, prompts=["Who wrote code?"], max_new_tokens=8)
    greedy, plain_calls = list(ids), len(calls)
    said: list[str] = []

    def after(self: ReadoutDrafts, text: str) -> list[int]:
        done = len(said)
        said.append(text)
        truth = greedy[done + 1: done + 1 + right]
        return truth + [(greedy[done + 1 + right] + 1) % 50] if done + 1 + right < len(
            greedy) else truth

    monkeypatch.setattr(ReadoutDrafts, "after", after)
    calls.clear()
    assert model.decode(z, prompts=["Who wrote code?"], max_new_tokens=8) == plain
    assert len(greedy) > 2
    if right:
        assert len(calls) < plain_calls
