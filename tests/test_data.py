import numpy as np
import pytest
import torch

from seqvae.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seqvae.data import BucketBatchSampler, SentenceDataset, collate, delete_tokens, word_dropout


def random_dataset(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return SentenceDataset.from_lists([list(rng.integers(4, 50, size=rng.integers(1, 40))) for _ in range(n)])


@pytest.mark.parametrize("batch_size,bucket", [(1, 1), (7, 3), (64, 100), (1000, 2)])
def test_bucketing_covers_every_sentence_once(batch_size, bucket):
    ds = random_dataset(997)
    sampler = BucketBatchSampler(ds.lengths, batch_size, seed=3, bucket_size=bucket)
    for epoch in (0, 1):
        batches = sampler.batches(epoch)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(len(ds)))
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert sum(len(b) < batch_size for b in batches) == (len(ds) % batch_size > 0)  # one short batch at most
        assert len(batches) == len(sampler)


def test_bucketing_reduces_padding_and_is_reproducible():
    ds = random_dataset(2000)
    bucketed = BucketBatchSampler(ds.lengths, 32, seed=1, bucket_size=50)
    unbucketed = BucketBatchSampler(ds.lengths, 32, seed=1, bucket_size=1)

    def padding(batches):
        return sum(int(ds.lengths[b].max() * len(b) - ds.lengths[b].sum()) for b in batches)

    assert padding(bucketed.batches(0)) < 0.25 * padding(unbucketed.batches(0))
    a, b = bucketed.batches(5), BucketBatchSampler(ds.lengths, 32, seed=1, bucket_size=50).batches(5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, bucketed.batches(6)))


def test_eval_order_is_deterministic_and_complete():
    ds = random_dataset(101)
    batches = BucketBatchSampler(ds.lengths, 10, shuffle=False).batches()
    assert sorted(np.concatenate(batches).tolist()) == list(range(101))
    lens = [ds.lengths[b].max() for b in batches]
    assert lens == sorted(lens, reverse=True)


def test_collate_layout():
    batch = collate([[5, 6, 7], [8]])
    assert batch.src.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert batch.src_lens.tolist() == [3, 1]
    assert batch.dec_in.tolist() == [[BOS_ID, 5, 6, 7], [BOS_ID, 8, PAD_ID, PAD_ID]]
    assert batch.target.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.num_target_tokens == 6


def test_dataset_from_lists_round_trip():
    sents = [[4, 5], [6], [7, 8, 9]]
    ds = SentenceDataset.from_lists(sents)
    assert [ds[i].tolist() for i in range(3)] == sents
    assert ds.num_target_tokens == 6 + 3
    assert len(ds.subset(2)) == 2 and ds.subset(2)[1].tolist() == [6]


def test_fingerprint_names_the_sentences_not_the_arrays():
    sents = [[4, 5], [6], [7, 8, 9]]
    ds = SentenceDataset.from_lists(sents)
    same = SentenceDataset(ds.ids.astype(np.int32), ds.offsets)  # as a split is stored on disk
    assert same.fingerprint() == ds.fingerprint()
    others = ([[4, 5], [6], [7, 8, 10]], [[4], [5, 6], [7, 8, 9]], [[4, 5], [6]])  # a token, a boundary, one fewer
    assert len({ds.fingerprint(), *(SentenceDataset.from_lists(o).fingerprint() for o in others)}) == 4


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_word_dropout_rate_and_protected_positions(rate):
    lens = torch.randint(1, 30, (400,), generator=torch.Generator().manual_seed(0))
    batch = collate([list(range(4, 4 + int(n))) for n in lens])
    out = word_dropout(batch.dec_in, rate, unk_id=UNK_ID, generator=torch.Generator().manual_seed(1))
    assert (out[:, 0] == BOS_ID).all()
    pad = batch.dec_in == PAD_ID
    assert (out[pad] == PAD_ID).all()
    eligible = ~pad
    eligible[:, 0] = False
    n = int(eligible.sum())
    dropped = int((out[eligible] == UNK_ID).sum())
    # binomial: mean n*rate, std sqrt(n*rate*(1-rate)); 5 sigma
    assert abs(dropped - n * rate) <= 5 * (n * rate * (1 - rate)) ** 0.5 + 1e-9
    assert ((out != batch.dec_in) == (out == UNK_ID) & (batch.dec_in != UNK_ID)).all()


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.9])
def test_delete_tokens_keeps_an_ordered_subsequence_at_the_rate(rate):
    lens = torch.randint(0, 30, (400,), generator=torch.Generator().manual_seed(0))
    sents = [list(range(4 + 100 * b, 4 + 100 * b + int(n))) for b, n in enumerate(lens)]  # increasing, distinct
    batch = collate(sents)
    src, new_lens = delete_tokens(batch.src, batch.src_lens, rate, generator=torch.Generator().manual_seed(1))
    assert src.shape[1] == max(int(new_lens.max()), 1)
    fallback = 0
    for b, s in enumerate(sents):
        n = int(new_lens[b])
        kept = src[b, :n].tolist()
        assert (src[b, n:] == PAD_ID).all()
        assert set(kept) <= set(s) and kept == sorted(kept)  # a subsequence, in order
        assert n >= min(len(s), 1)  # a non-empty sentence keeps a token; an empty one stays empty
        fallback += len(s) > 0 and n == 1 and kept == s[:1]
    total = int(batch.src_lens.sum())
    deleted = total - int(new_lens.sum())
    # binomial: mean total*rate, 5 sigma; a sentence that lost everything got its first token back
    assert abs(deleted - total * rate) <= 5 * (total * rate * (1 - rate)) ** 0.5 + fallback
    same, same_lens = delete_tokens(batch.src, batch.src_lens, 0.0)
    assert same is batch.src and same_lens is batch.src_lens
