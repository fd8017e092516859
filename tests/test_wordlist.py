"""Known words (seqvae.wordlist): the word list, its file in a checkpoint, and decoding held to it."""

import random
import re
import shutil

import pytest
import torch

from seqvae import SeqVAE, generation, sampler, wordlist
from seqvae.api import InputError
from seqvae.checkpoint import CheckpointError
from seqvae.wordlist import WORD, WORDS_FILE, KnownWords, WordListError, load_words

EOS = 3


def test_advance_accepts_known_words_and_starts_of_them():
    kw = KnownWords(["the", "movie", "don't", "don", "a"])
    assert kw.advance("", " the") == "the"  # open: may go on
    assert kw.advance("the", " mov") == "mov"  # "the" closed (known), "mov" starts "movie"
    assert kw.advance("mov", "ie.") == ""  # "movie" closed by the full stop
    assert kw.advance("", " Movie") == "movie"  # lowercased
    assert kw.advance("", " theatre") is None  # no known word starts so
    assert kw.advance("mov", " ") is None  # closes "mov", not a word
    assert kw.advance("don", "'") == "don'"  # an apostrophe may be inner ("don't")...
    assert kw.advance("don'", "t") == "don't"
    assert kw.advance("don'", " a") == "a"  # ...or close "don"
    assert kw.advance("", " 1984, (") == ""  # digits and symbols are not words
    assert kw.advance("the", "s") is None  # "thes" starts no known word


def test_from_counts_keeps_frequent_words_only():
    kw = KnownWords.from_counts({"great": 5, "grate": 4, "c3po": 9, "it's": 7}, min_count=5)
    assert kw.words == {"great", "it's"} and kw.min_count == 5
    with pytest.raises(WordListError, match="lowercased word"):
        KnownWords(["Great"])


def test_word_list_file_round_trip_and_strict_loading(tmp_path):
    assert load_words(tmp_path) is None  # no list: decoding writes any word
    kw = KnownWords(["b", "a", "it's"], min_count=3)
    path = kw.save(tmp_path)
    assert path.read_text().splitlines() == ["# seqvae known words: min_count=3 words=3", "a", "b", "it's"]
    back = load_words(tmp_path)
    assert back.words == kw.words and back.min_count == 3
    path.write_text("# seqvae known words: min_count=3 words=4\na\nb\nit's\n")
    with pytest.raises(WordListError, match="partial"):
        load_words(tmp_path)
    path.write_text("a\nb\n")
    with pytest.raises(WordListError, match="not a seqvae word list"):
        load_words(tmp_path)
    path.write_text("# seqvae known words: min_count=3 words=2\na\nB C\n")
    with pytest.raises(WordListError, match="lowercased word"):
        load_words(tmp_path)


def toy_filter():
    """Ids: 0-2 special, 3 EOS, then " ab", " zz", " abc", "c", "!"; known words: ab, abc."""
    texts = [None, None, None, None, " ab", " zz", " abc", "c", "!"]
    return KnownWords(["ab", "abc"]).filter(texts, EOS)


@pytest.mark.parametrize("streams", [False, True])
def test_sampling_under_the_filter_is_the_restricted_distribution(streams):
    """Rejecting and redrawing gives p restricted to the allowed tokens, renormalised: from an empty
    start, " ab", " abc" and "!" are allowed, and so is the end (nothing is open). Drawn from one generator,
    or as decoding draws, each row from its own stream (a redrawn row reads its stream's next number)."""
    filt = toy_filter()
    logits = torch.tensor([[-9.0, -9.0, -9.0, 0.0, 0.5, 2.0, -0.5, 1.5, 0.2]]).repeat(20000, 1)
    filt.start(len(logits))
    if streams:
        noise = sampler.RowNoise(0)
        noise.start(len(logits))
        tokens = filt.choose(logits, lambda lg, idx, base: sampler.draw(lg, lambda r: noise(idx[r])))
    else:
        gen = torch.Generator().manual_seed(0)
        tokens = filt.choose(logits, lambda lg, idx, base: sampler.draw(lg, gen))
    allowed = torch.tensor([3, 4, 6, 8])
    expect = torch.softmax(logits[0, allowed], dim=0)
    freq = torch.stack([(tokens == t).float().mean() for t in allowed])
    assert torch.allclose(freq, expect, atol=0.015), (freq, expect)
    assert set(tokens.tolist()) <= set(allowed.tolist())
    assert set(filt.tails) == {"ab", "abc", ""}


def test_greedy_under_the_filter_takes_the_best_allowed_token_and_moves_the_state():
    filt = toy_filter()
    filt.start(2)
    filt.tails = ["ab", ""]
    logits = torch.tensor([[0.0, 0, 0, 1.0, 0.0, 9.0, 0.0, 5.0, 0.0],    # "ab" + "c" -> "abc": allowed
                           [0.0, 0, 0, 1.0, 0.0, 9.0, 0.0, 5.0, 0.0]])   # "" + "c": starts no word; EOS next best
    tokens = filt.choose(logits, lambda lg, idx, base: lg.argmax(dim=-1))
    assert tokens.tolist() == [7, 3] and filt.tails == ["abc", ""]
    filt.keep(torch.tensor([False, True]))
    assert filt.tails == [""]


def test_a_row_picked_again_sees_its_refused_tokens_at_minus_inf_and_nothing_else_changed():
    """What `choose` hands the pick when it picks a row again: that row's logits with every token refused so far at
    -inf (a sampler's redraw depends on exactly these numbers), and the step's logits as `base`."""
    filt, calls = toy_filter(), []
    filt.start(3)
    logits = torch.tensor([[0.0, 0, 0, 0.5, 3.0, 0.0, 0.0, 0.0, 0.0],    # " ab": allowed at once
                           [0.0, 0, 0, 0.5, 1.0, 9.0, 0.0, 5.0, 0.0],    # " zz", then "c" refused, then " ab"
                           [0.0, 0, 0, 0.5, 0.0, 0.0, 0.0, 7.0, 2.0]])   # "c" refused, then "!"

    def pick(sub, idx, base):
        calls.append((sub.clone(), idx.tolist(), None if base is None else base.clone()))
        return sub.argmax(dim=-1)

    assert filt.choose(logits, pick).tolist() == [4, 4, 8]
    assert [c[1] for c in calls] == [[0, 1, 2], [1, 2], [1]]
    assert torch.equal(calls[0][0], logits) and calls[0][2] is None
    inf = float("-inf")
    assert torch.equal(calls[1][0], logits[[1, 2]].index_put_((torch.tensor([0, 1]), torch.tensor([5, 7])),
                                                                torch.tensor(inf)))
    assert torch.equal(calls[2][0], logits[[1]].index_put_((torch.tensor([0, 0]), torch.tensor([5, 7])),
                                                           torch.tensor(inf)))
    assert torch.equal(calls[1][2], logits[[1, 2]]) and torch.equal(calls[2][2], logits[[1]])


def dead_end_filter():
    """Ids: 0-2 special, 3 EOS, then " x", " ab", "c", "!", "d", " "; known words: x, abde. No token writes "e":
    "ab" and "abd" go on (with "d") only to a word that no token finishes."""
    return KnownWords(["x", "abde"]).filter([None, None, None, None, " x", " ab", "c", "!", "d", " "], EOS)


def favour(*ids):
    """Logits (len(ids), 10) with row i's likeliest token ids[i]."""
    return torch.tensor([[9.0 if i == t else 0.0 for i in range(10)] for t in ids])


def argmax(logits, idx, base=None):
    return logits.argmax(dim=-1)


@pytest.mark.parametrize("sampled", [False, True])
def test_a_row_whose_open_word_cannot_be_finished_at_max_len_ends_before_it(sampled):
    """At the last step no token finishes "ab" or "abd" (of "abde"): such a row ends (EOS) and `cut` says where,
    before the token that began the open word; a row whose open word is its first keeps nothing. Such rows used
    to take the unfiltered pick ("c": the invented "abc", "abdc"). The other rows are picked as before. A row
    with no word open may end after its last token (`safe`), less a trailing space."""
    filt = dead_end_filter()
    filt.start(3)
    assert filt.choose(favour(4, 5, 4), argmax).tolist() == [4, 5, 4]  # " x", " ab", " x"
    assert filt.choose(favour(5, 7, 9), argmax).tolist() == [5, 8, 9] and filt.cut == {}  # "ab!" refused: "d"
    assert filt.tails == ["ab", "abd", ""] and filt.safe == [1, 0, 1]
    gen = torch.Generator().manual_seed(0)
    pick = (lambda lg, idx, base: sampler.draw(lg, gen)) if sampled else argmax
    tokens = filt.choose(favour(6, 6, 6), pick, last=True)  # "c" is refused everywhere ("abc", "abdc", "c")
    assert tokens[:2].tolist() == [EOS, EOS] and filt.cut == {0: 1, 1: 0}  # " x" / nothing kept
    assert int(tokens[2]) in (EOS, 4, 7, 9)  # row 2: the end, " x", "!" or " "
    assert filt.choose(favour(4, 4, 4), argmax).tolist() == [4, 4, 4] and filt.cut == {}  # reset each step
    filt.start(1)
    for t in (4, 9, 5):  # " x", " ", " ab": the open word begins after a space, which is left out too
        filt.choose(favour(t), argmax)
    assert filt.safe == [1] and int(filt.choose(favour(6), pick, last=True)[0]) == EOS and filt.cut == {0: 1}


def test_beam_extensions_of_a_beam_whose_open_word_cannot_be_finished():
    """best gives a beam whose open word no token finishes no extension (all -inf) and names it in `cut`."""
    filt = dead_end_filter()
    filt.start(2)
    filt.choose(favour(4, 5), argmax)
    top_logit, top_tok, after = filt.best(torch.arange(10.0).repeat(2, 1), 2, 3, last=True)
    assert filt.cut == {1: 0}
    assert top_tok[0].tolist() == [9, 7] and after[0] == ["", ""]  # " " and "!" end "x"; "d", "c" do not
    assert top_logit[1].isinf().all() and after[1] == [None, None]


def test_allowed_all_equals_checking_every_token():
    """The fallback's pruned scan gives exactly the tokens `advance` accepts, for open words of every kind
    (as a row's last token: those too that leave no word half written)."""
    texts = [None, None, None, None, " ab", " zz", " abc", "c", "!", "'", "'s", "s", "t", "1984", " Don", "n't", ""]
    filt = KnownWords(["ab", "abc", "don't", "dogs", "dog's", "a"]).filter(texts, EOS)
    free = filt.free_ok.clone()
    for tail in ["", "a", "ab", "abc", "d", "do", "don", "don'", "dog", "dogs", "dogs'", "dog'", "abcd"]:
        after = [None if t is None else filt.words.advance(tail, t) for t in filt.texts]
        assert filt.allowed_all(tail).tolist() == [a is not None for a in after], tail
        assert filt.allowed_all(tail, last=True).tolist() == [a is not None and filt.complete(a) for a in after], tail
    assert torch.equal(filt.free_ok, free)  # allowed_all(last=True) left the shared table as it was


def reference_open(written: str, words: set[str]) -> str | None:
    """The plain definition, on the whole text a row has written: the word left open at its end ("" if none), or
    None if a word it completes is not listed or the open one starts none (no memo, no tail, no pruning)."""
    s, open_word = written.lower(), ""
    for m in re.finditer(WORD, s):
        if m.end() == len(s) or (m.end() == len(s) - 1 and s[-1] == "'"):
            open_word = s[m.start():]
            if not (any(w.startswith(open_word) for w in words) or open_word.endswith("'") and open_word[:-1] in words):
                return None
        elif m.group() not in words:
            return None
    return open_word


@pytest.mark.parametrize("seed", range(4))
def test_the_filter_agrees_with_the_plain_definition_on_random_pieces(monkeypatch, seed):
    """Random pieces (letters, apostrophes, spaces, digits, punctuation, capitals, empty, None) and a random list;
    rows written by random walks. What the filter allows (`allowed`: beam search's many candidates, `step`,
    `allowed_all`, each with and without `last`) and what `best` and `choose` (greedy) pick must match the plain
    definition on each row's whole text, also when the remembered answers are read back and after they are
    forgotten (tiny memo bounds here)."""
    monkeypatch.setattr(wordlist, "MEMO_SIZE", 50)
    monkeypatch.setattr(wordlist, "ALL_MEMO_CELLS", 200)
    rng = random.Random(seed)
    chars = "abd'  .1A"
    texts = [None, None, None, None, *("".join(rng.choice(chars) for _ in range(rng.randint(0, 3))) for _ in range(36))]
    texts[5], texts[6] = None, ""  # no text (like <unk>), and an empty one
    words = {rng.choice(["", " "]).strip() + "".join(rng.choice("abd") for _ in range(rng.randint(1, 4)))
             for _ in range(12)} | {"do", "don't", "a"}
    filt = KnownWords(words).filter(texts, EOS)
    V, n = len(texts), 24
    filt.start(n)
    written, counts = [""] * n, torch.zeros(2, dtype=torch.long)  # candidates refused / allowed
    for step in range(10):
        last = step % 3 == 2
        rows = torch.arange(n)
        for _ in range(2):  # the second time from what was remembered
            cand = torch.randint(0, V, (n, 12), generator=torch.Generator().manual_seed(seed * 100 + step))
            ok, after = filt.allowed(rows, cand, last)
            counts += torch.bincount(ok.view(-1).long(), minlength=2)
            for i in range(n):
                expect = [None if t in (0, 1, 2, 5) else reference_open(written[i] + (" " if t == EOS else texts[t]),
                                                                         words) for t in cand[i].tolist()]
                if last:
                    expect = [a if a is not None and filt.complete(a) else None for a in expect]
                assert after[i] == expect and ok[i].tolist() == [a is not None for a in expect], (written[i], last)
                assert [filt.step(i, t, last) for t in cand[i].tolist()] == expect
                every = [None if t in (0, 1, 2, 5) else reference_open(written[i] + (" " if t == EOS else texts[t]),
                                                                       words) for t in range(V)]
                every = [a is not None and (not last or filt.complete(a)) for a in every]
                assert filt.allowed_all(filt.tails[i], last).tolist() == every, (written[i], last)
        logits = torch.randn(n, V, generator=torch.Generator().manual_seed(seed * 100 + step + 50))
        for k in (1, 3):
            top_logit, top_tok, _ = filt.best(logits, k, 4, last)
            for i in range(n):
                good = [t for t in logits[i].argsort(descending=True).tolist() if filt.step(i, t, last) is not None][:k]
                assert top_tok[i, :len(good)].tolist() == good and top_logit[i, len(good):].isinf().all()
        if not last:  # greedy: the likeliest allowed token; the rows move on with it
            expect = [max((t for t in range(V) if filt.step(i, t) is not None), key=lambda t: float(logits[i, t]),
                          default=EOS) for i in range(n)]
            tokens = filt.choose(logits, argmax).tolist()
            assert tokens == expect
            written = [w + (" " if t == EOS else texts[t]) for w, t in zip(written, tokens)]
            assert filt.tails == [reference_open(w, words) for w in written]
    assert counts.min() > 100 and sum(map(bool, filt.tails)) > 2  # the test has work to do: both kinds, open words


def test_a_sentence_cut_at_max_len_ends_on_a_listed_word(trained_tiny_vae):
    """A row that reaches max_len is cut there: its last token must not leave a word half written. Here the
    token "the" writes " the" and "wonderful" writes "re": "the" alone is not listed, "there" is. Rows cut
    right after " the" ended in the unlisted "the"."""
    model, tok, _ = trained_tiny_vae
    texts = tok.piece_texts()
    texts[tok.words.index("wonderful")] = "re"
    listed = {w for w in tok.words[4:] if w.isalpha()} - {"the", "wonderful"} | {"there"}
    filt = KnownWords(listed).filter(texts, tok.eos_id)
    z = torch.randn(32, model.cfg.latent_dim, generator=torch.Generator().manual_seed(0)) * 2
    for strategy, opts in (("greedy", {}), ("beam", {"num_beams": 3}), ("sample", {"seed": 0})):
        for max_len in (1, 2, 3, 5):
            ids = generation.generate(model, z, strategy=strategy, max_len=max_len, words=filt.fresh(), **opts)
            written = ["".join(texts[i] for i in row) for row in ids]
            assert all(w in listed for t in written for w in t.split()), (strategy, max_len, written)


def test_a_word_that_cannot_be_finished_by_max_len_is_left_out(trained_tiny_vae):
    """The tokens "the", "movie" and "plot" write " the", "at" and "re", and of the three words only "theatre" is
    listed: a row that has " the" or " the" "at" open at max_len cannot finish it there (at max_len 2 every row
    that starts with "the"). It ends before " the" instead, at its last listed word (the empty sentence if there
    is none), as if it had written EOS there, and its score for best of K is that sentence's. It used to take
    the unfiltered pick and end in an unlisted word ("the", "theat"). Before the cut, rows are as without it."""
    from seqvae.data import collate

    model, tok, _ = trained_tiny_vae
    texts = tok.piece_texts()
    for word, text in (("movie", "at"), ("plot", "re")):
        texts[tok.words.index(word)] = text
    listed = {w for w in tok.words[4:] if w.isalpha()} - {"the", "movie", "plot"} | {"theatre"}
    filt = KnownWords(listed).filter(texts, tok.eos_id)
    z = torch.randn(48, model.cfg.latent_dim, generator=torch.Generator().manual_seed(0)) * 2
    cut = empty = 0
    for strategy, opts in (("greedy", {}), ("beam", {"num_beams": 1}), ("beam", {"num_beams": 3}),
                           ("sample", {"seed": 0})):  # sample last: `full` is used below
        full = generation.generate(model, z, strategy=strategy, max_len=12, words=filt.fresh(), **opts)
        for max_len in (1, 2, 3, 4, 6):
            ids = generation.generate(model, z, strategy=strategy, max_len=max_len, words=filt.fresh(), **opts)
            written = ["".join(texts[i] for i in row) for row in ids]
            assert all(w in listed for t in written for w in t.split()), (strategy, max_len, written)
            if opts.get("num_beams", 1) == 1:  # one sentence per row: all but its last token as at max_len 12
                assert all(row[:max_len - 1] == long[:len(row[:max_len - 1])] for row, long in zip(ids, full))
                cut += sum(len(row) <= max_len - 2 and row != long for row, long in zip(ids, full))
                empty += sum(max_len > 1 and not row and bool(long) for row, long in zip(ids, full))
        if strategy == "beam":
            assert opts["num_beams"] == 3 or ids == generation.generate(model, z, max_len=6, words=filt.fresh())
    assert cut and empty  # rows were cut back, some to nothing
    cut = 0
    for max_len in (2, 3, 4, 6):
        scores: list[float] = []
        with torch.no_grad():
            ids = generation.sample(model, z, max_len=max_len, seed=0, words=filt.fresh(), scores=scores)
            cut += sum(len(row) <= max_len - 2 and row != long for row, long in zip(ids, full))
            for i, row in enumerate(ids):
                b = collate([row])
                assert scores[i] == pytest.approx(-model.token_nll(b.dec_in, b.target, z[i:i + 1]).item(),
                                                  rel=1e-3, abs=1e-3)  # batched and packed float32 differ a little
    assert cut


@pytest.mark.parametrize("strategy, opts", [("greedy", {}), ("beam", {"num_beams": 3}), ("sample", {"seed": 0})])
def test_a_codes_sentence_under_the_filter_does_not_depend_on_the_other_codes(trained_tiny_vae, strategy, opts):
    """Each row's open word and safe end are its own: rows end at different steps and leave the batch (beam
    search regroups its beams), and their state must go with them. With words that go on over several tokens
    (" the" + "at" + "re": "theatre", as above) a code decodes alone (greedy, beam) or beside other codes
    (sampled: row i is keyed by i, docs/usage.md) to what it decodes among the others."""
    model, tok, _ = trained_tiny_vae
    texts = tok.piece_texts()
    for word, text in (("movie", "at"), ("plot", "re"), ("end", "re"), ("it", "s")):  # late words go on too
        texts[tok.words.index(word)] = text
    listed = {w for w in tok.words[4:] if w.isalpha()} - {"the", "movie", "plot", "end", "it"} | {"theatre", "there",
                                                                                                 "loveds"}
    filt = KnownWords(listed).filter(texts, tok.eos_id)
    z = torch.randn(32, model.cfg.latent_dim, generator=torch.Generator().manual_seed(0)) * 2

    def run(codes):
        return generation.generate(model, codes, strategy=strategy, max_len=12, words=filt.fresh(), **opts)

    held = run(z)
    written = ["".join(texts[i] for i in row) for row in held]
    assert any("theat" in t or "there" in t for t in written), written  # words written over several tokens
    assert len({len(row) for row in held}) > 2  # rows leave the batch at different steps
    if strategy == "sample":
        other = torch.randn(32, model.cfg.latent_dim, generator=torch.Generator().manual_seed(1)) * 2
        for i in range(len(z)):  # row i among other codes, as many or fewer
            mixed = torch.cat([other[:i], z[i:i + 1], other[i + 1:]])
            assert run(mixed)[i] == held[i] and run(mixed[: i + 1])[i] == held[i], i
    else:
        assert [run(row)[0] for row in z] == held
        perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(2)).tolist()
        assert run(z[perm]) == [held[i] for i in perm]


@pytest.fixture
def ckpt_with_words(tiny_vae_ckpt, tmp_path):
    """A copy of the tiny VAE with a word list that leaves out two of its words."""
    d = tmp_path / "ckpt"
    shutil.copytree(tiny_vae_ckpt, d)
    vae = SeqVAE.from_pretrained(d, device="cpu")
    words = {w for w in vae.tokenizer.words[4:] if w.isalpha()} - {"great", "boring"}
    KnownWords(words).save(d)
    return d


@pytest.mark.parametrize("opts", [{"strategy": "greedy"}, {"strategy": "beam", "num_beams": 3},
                                  {"strategy": "sample", "temperature": 2.0}])
def test_decoding_writes_only_listed_words(ckpt_with_words, opts):
    vae = SeqVAE.from_pretrained(ckpt_with_words, device="cpu")
    assert vae.words is not None and "great" not in vae.words
    z = torch.randn(64, vae.latent_dim, generator=torch.Generator().manual_seed(0)) * 2
    free = vae.decode(z, words="any", seed=1, **opts)
    held = vae.decode(z, seed=1, **opts)  # the default, with a list: known words only
    assert any(w in ("great", "boring") for t in free for w in t.split())  # the filter has work to do
    assert all(w in vae.words for t in held for w in t.split())
    assert held == vae.decode(z, words="known", seed=1, **opts)
    kept = [f == h for f, h in zip(free, held) if not {"great", "boring"} & set(f.split())]
    if opts["strategy"] != "beam":  # a sentence that needs no refusal comes out the same (sampled: each row
        assert kept and all(kept)    # draws from its own stream, which another row's redraws leave alone)


@pytest.mark.parametrize("listed", [{"director"}, {"wonderful"}, {"terrible", "director"}])
def test_beam_search_keeps_to_a_list_its_likeliest_tokens_miss(tiny_vae_ckpt, tmp_path, listed):
    """A list the model seldom writes: a beam's WORD_CANDIDATES * K likeliest tokens are often all refused.
    Beam search then looks among all tokens (it used to append a refused word with a score of -inf, which
    let unlisted words through and made the ranking of the rest of the search arbitrary)."""
    d = tmp_path / "few"
    shutil.copytree(tiny_vae_ckpt, d)
    KnownWords(listed).save(d)
    vae = SeqVAE.from_pretrained(d, device="cpu")
    z = torch.randn(16, vae.latent_dim, generator=torch.Generator().manual_seed(0)) * 2
    for k in (1, 2, 3):
        out = vae.decode(z, strategy="beam", num_beams=k)
        assert all(w in listed for t in out for w in t.split()), (k, out)
    assert vae.decode(z, strategy="beam", num_beams=1) == vae.decode(z)  # one beam is greedy, with a list too


def test_a_list_of_every_word_changes_nothing(tiny_vae_ckpt, tmp_path):
    d = tmp_path / "all"
    shutil.copytree(tiny_vae_ckpt, d)
    vae = SeqVAE.from_pretrained(d, device="cpu")
    KnownWords({w for w in vae.tokenizer.words[4:] if w.isalpha()}).save(d)
    listed = SeqVAE.from_pretrained(d, device="cpu")
    z = torch.randn(16, vae.latent_dim, generator=torch.Generator().manual_seed(2))
    for opts in ({}, {"strategy": "beam"}, {"strategy": "top-p", "top_p": 0.9, "seed": 3}):
        assert listed.decode(z, **opts) == vae.decode(z, **opts)


def test_word_option_errors_and_saving(ckpt_with_words, tiny_vae_ckpt, tmp_path):
    plain = SeqVAE.from_pretrained(tiny_vae_ckpt, device="cpu")
    with pytest.raises(InputError, match="no word list"):
        plain.sample(2, words="known")
    with pytest.raises(InputError, match="unknown words option"):
        plain.sample(2, words="some")
    vae = SeqVAE.from_pretrained(ckpt_with_words, device="cpu")
    out = vae.save_pretrained(tmp_path / "copy")
    assert (out / WORDS_FILE).read_text() == (ckpt_with_words / WORDS_FILE).read_text()
    (ckpt_with_words / WORDS_FILE).write_text("# seqvae known words: min_count=5 words=9\nthe\n")
    with pytest.raises(CheckpointError, match="partial"):
        SeqVAE.from_pretrained(ckpt_with_words, device="cpu")


def test_cli_words_writes_the_list(tiny_vae_ckpt, tiny_data_dir, tmp_path, capsys, one_line):
    from seqvae.cli import main

    d = tmp_path / "ckpt"
    shutil.copytree(tiny_vae_ckpt, d)
    assert main(["words", str(d), "--data", str(tiny_data_dir), "--min-count", "1"]) == 0
    assert "words used at least 1 times" in capsys.readouterr().out
    kw = load_words(d)
    assert {"the", "movie", "great"} <= kw.words
    assert main(["sample", str(d), "-n", "3", "--seed", "0", "--json"]) == 0
    assert '"words": "known"' in capsys.readouterr().out
    (d / WORDS_FILE).write_text("# seqvae known words: min_count=1 words=7\nthe\n")  # damaged: cannot load...
    one_line(["sample", d, "-n", "1"], "partial")
    assert main(["words", str(d), "--data", str(tiny_data_dir), "--min-count", "1"]) == 0  # ...but can be rewritten
    assert load_words(d).words == kw.words
    one_line(["words", d, "--data", tiny_data_dir, "--min-count", "0"], "--min-count")
    one_line(["words", d, "--data", tiny_data_dir, "--min-count", "100000"], "no word is used")


@pytest.mark.parametrize("opts,probs", [
    ({"top_p": 0.7}, {4: 0.4, 5: 0.35, 6: 0.25}),               # the nucleus {" ab", " zz"} holds " ab" alone
    ({"top_k": 2}, {4: 0.4, 5: 0.35, 6: 0.25}),                 # so do the top 2
    ({"top_p": 0.75, "temperature": 0.5}, {5: 0.671, 4: 0.447, 6: 0.387, 8: 0.346, EOS: 0.283}),  # " ab", " abc"
    ({"top_p": 0.7}, {5: 0.8, 7: 0.1, 4: 0.06, 6: 0.04}),      # the nucleus {" zz"} holds no listed word
])
def test_filtered_sampling_under_the_list_draws_from_a_fixed_distribution(monkeypatch, opts, probs):
    """A sampler held to the list draws from its own distribution (softmax(logits / T) cut to the top k and the
    nucleus, computed here by sorting) restricted to the allowed tokens and renormalised; if that holds none,
    from the allowed tokens' distribution cut the same way. Refused tokens used to be removed and the cuts made
    again on what was left, so the nucleus grew with each redraw: a mixture of neither (" ab" 0.82, not 1.0)."""
    from seqvae.config import ModelConfig
    from seqvae.model import SentenceVAE

    filt, n = toy_filter(), 20000
    row = torch.full((9,), 1e-6)
    for t, q in probs.items():
        row[t] = q
    row[[0, 2]] = 0.0  # <pad>, BOS
    monkeypatch.setattr(generation, "step", lambda model, tokens, z, h, memory=None: (row.log().expand(len(tokens), 9), h))
    model = SentenceVAE(ModelConfig(vocab_size=9, embed_dim=4, hidden_dim=4, latent_dim=2)).eval()
    drawn = generation.generate(model, torch.zeros(n, 2), strategy="sample", max_len=1, seed=0, words=filt.fresh(),
                                **opts)
    first = torch.tensor([r[0] if r else EOS for r in drawn])
    allowed = torch.zeros(9, dtype=torch.bool)
    allowed[[EOS, 4, 6, 8]] = True  # an empty start: " ab", " abc", "!" and the end; not " zz", "c", <unk>

    def cut(p):  # p (V,) -> the sampler's distribution: top k, then the nucleus, renormalised (by sorting)
        p = p ** (1 / opts.get("temperature", 1.0))
        q, order = (p / p.sum()).sort(descending=True)
        q[opts.get("top_k", 9):] = 0.0
        q /= q.sum()
        q[q.cumsum(0) - q >= opts.get("top_p", 1.0)] = 0.0
        return torch.zeros(9, dtype=q.dtype).scatter(0, order, q / q.sum())

    expect = cut(row.double()) * allowed
    expect = expect / expect.sum() if expect.sum() > 0 else cut(row.double() * allowed)
    freq = torch.bincount(first, minlength=9).double() / n
    assert torch.allclose(freq, expect, atol=0.015), (freq, expect)
