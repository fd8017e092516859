import math

import pytest

from seqvae import textscores


def test_bleu_through_our_wrapper():
    refs = ["the movie was great and i loved it .", "the plot was slow at times ."]
    assert textscores.corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert textscores.corpus_bleu(["purple zebras eat quietly", "seven ships sail north"], refs) < 5
    with pytest.raises(ValueError):
        textscores.corpus_bleu(refs, refs[:1])
    scores = textscores.reconstruction_scores(refs, [refs[0], "something else entirely ."])
    assert scores["exact"] == 0.5 and 0.5 < scores["word_f1"] < 1
    # a hypothesis that is a prefix of its reference: every n-gram precision is 1, BLEU is the brevity
    # penalty alone, exp(1 - 9 / 5) for 5 of the reference's 9 tokens (hypotheses first, then references)
    assert textscores.corpus_bleu(["the movie was great and"], refs[:1]) == pytest.approx(100 * math.exp(1 - 9 / 5))
    assert textscores.corpus_bleu(["The Movie was great and i loved it ."], refs[:1]) < 100  # case-sensitive
    assert textscores.word_f1("the movie", "the movie was great") == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert textscores.word_f1("the movie was great", "the movie") == pytest.approx(2 / 3)


def test_scores_by_length_split_by_the_inputs_words():
    short = ["a fine film .", "it was dull ."]  # 4 words each
    long = ["the plot of this film makes no sense at all and the acting is worse ."]  # 16 words
    hyps = short + ["purple zebras eat quietly on seven ships sailing north under a grey sky ."]
    rows = textscores.scores_by_length(hyps, short + long)
    assert [(r["words"], r["sentences"]) for r in rows] == [("1-8", 2), ("13-17", 1)]  # empty buckets left out
    assert rows[0]["bleu"] == pytest.approx(100.0) and rows[0]["exact"] == 1.0
    assert rows[1]["bleu"] < 5 and rows[1]["exact"] == 0.0
    assert textscores.scores_by_length(["x"] * 1, ["one two three " * 10])[0]["words"] == "18+"


def test_diversity_measures():
    same = ["the movie was great ."] * 4
    varied = ["the movie was great .", "a film i hated", "slow plot , fine actors", "never again !"]
    assert textscores.distinct_n(same, 2) < textscores.distinct_n(varied, 2) == 1.0
    assert textscores.self_bleu(same) == pytest.approx(100.0) and textscores.self_bleu(varied) < 20
    assert textscores.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert textscores.distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)


def test_leave_one_out_bleu_is_sacrebleus_sentence_bleu_against_the_others():
    """self_bleu counts each text's n-grams once instead of sacrebleu tokenizing the N - 1 references per text:
    the same scores, exactly, with repeated texts and n-grams (an n-gram's largest count in the text left out),
    empty texts, reference lengths tied around the hypothesis', punctuation and case."""
    import random

    import sacrebleu

    rng = random.Random(0)
    vocab = ["the", "movie", "The", "was", "great", ".", "!", "it's", "a", "plot,", "(good)", "bad"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) for _ in range(60)]
    texts += ["a a a a b", "a a a a b", "a a b", "", "the movie was great .", "the movie was great ."]
    for group in (texts, texts[:2], ["x y", "x y z w", "x"], ["", ""]):
        expected = [sacrebleu.sentence_bleu(t, group[:i] + group[i + 1:]).score for i, t in enumerate(group)]
        assert textscores.leave_one_out_bleu(group) == expected
