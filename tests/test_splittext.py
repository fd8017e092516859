import shutil

import numpy as np

from seqvae import splittext
from seqvae.tokenizer import load_tokenizer


def test_training_text_counts_words_and_copies(tiny_data_dir, tmp_path):
    data = shutil.copytree(tiny_data_dir, tmp_path / "data")
    train = splittext.TrainingText.from_data_dir(data)
    assert (data / splittext.WORDS_CACHE).is_file()
    again = splittext.TrainingText.from_data_dir(data)  # from the cache
    assert again.counts == train.counts and np.array_equal(again.hashes, train.hashes)
    tok = load_tokenizer(data)
    from seqvae.data import SentenceDataset

    seen = tok.decode(SentenceDataset.from_dir(data, "train")[0].tolist())
    assert train.invented_rate([seen]) == 0.0 and train.invented_rate(["zorblax quinthe"]) == 1.0
    assert train.copy_rate([seen, "zorblax quinthe"]) == 0.5
    few = splittext.INVENTED_BELOW
    counts = splittext.TrainingText({"rare": few - 1, "common": few}, np.zeros(0, dtype=np.int64))
    assert counts.invented_rate(["rare common", "common unseen"]) == 0.5  # seen fewer than INVENTED_BELOW times


def test_copy_rate_counts_the_texts_that_are_training_sentences_whatever_the_hashes_order():
    """copy_rate bisects the sorted training hashes: texts whose hash is below, above or between all of them,
    repeated texts, and hashes given unsorted and repeated count as a plain set lookup says."""
    train_texts = [f"sentence number {i}" for i in range(50)]
    hashes = splittext.TrainingText._hash(train_texts)
    shuffled = np.concatenate([hashes[::-1], hashes[:7]])  # unsorted, with repeats
    train = splittext.TrainingText({}, shuffled)
    texts = train_texts[::3] + [f"unseen {i}" for i in range(40)] + train_texts[:2] * 3
    known = set(hashes.tolist())
    expected = sum(h in known for h in splittext.TrainingText._hash(texts).tolist()) / len(texts)
    assert train.copy_rate(texts) == expected and 0 < expected < 1
    assert splittext.TrainingText({}, np.zeros(0, dtype=np.uint64)).copy_rate(texts) == 0.0
    assert train.copy_rate([]) == 0.0
