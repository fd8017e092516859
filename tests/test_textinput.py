"""seqvae.textinput: the identity of a list of texts (one definition for the report and the features cache)."""

from seqvae import quality
from seqvae.sentiment import features
from seqvae.textinput import texts_sha256


def test_texts_sha256_tells_apart_order_and_where_texts_split():
    base = texts_sha256(["a b", "c"])
    assert texts_sha256(["a b", "c"]) == base and texts_sha256(iter(["a b", "c"])) == base
    others = [["c", "a b"], ["a", "b c"], ["a bc"], ["a b", "c", ""], ["a b"], []]
    assert len({base, *(texts_sha256(o) for o in others)}) == 1 + len(others)


def test_the_report_and_the_features_cache_name_texts_alike():
    """Two definitions of one name (a report's JSON list, the cache's NUL-separated bytes) gave two digests."""
    assert quality.texts_sha256 is texts_sha256 and features.texts_sha256 is texts_sha256
