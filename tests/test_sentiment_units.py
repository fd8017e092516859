"""units: a review cut into clauses (sentiment/units.py)."""

import pytest

from seqvae.sentiment.units import SPLITTERS, review_to_clauses, split_clauses


CLAUSE_CASES = [
    ("I loved the acting, but the plot was a mess.", ["I loved the acting", "but the plot was a mess."]),
    ("The cast is fine but the script is weak.", ["The cast is fine", "but the script is weak."]),  # before "but"
    ("Although it starts slowly, the second half is wonderful; go see it soon.",
     ["Although it starts slowly", "the second half is wonderful", "go see it soon."]),
    ("The music by a real master (and his band) is the best part - truly the best.",
     ["The music by a real master", "and his band", "is the best part", "truly the best."]),
    ("But the end was good, though short.", ["But the end was good, though short."]),  # short piece rejoins
    ("Well, I liked it a lot.", ["Well, I liked it a lot."]),          # a short first piece joins the next
    ("Yes, yes, it is a very good film, I think.", ["Yes, yes, it is a very good film, I think."]),
    ("Great film.", ["Great film."]),
    ("It cost $6,000 to make, but it looks really cheap.", ["It cost $6,000 to make", "but it looks really cheap."]),
    ("We left the cinema at 2:00, bored to tears.", ["We left the cinema at 2:00", "bored to tears."]),  # in numbers: no cut
    ("  spaced out , really  ", ["spaced out , really"]),
    ("*** , ***", []),
]


@pytest.mark.parametrize("text,expected", CLAUSE_CASES)
def test_split_clauses(text, expected):
    assert split_clauses(text) == expected


def test_review_to_clauses_cuts_each_sentence():
    raw = "A fine film, with a cast that cares.<br />Dull, slow and long. The end, however, is a joy to watch."
    assert review_to_clauses(raw) == ["A fine film", "with a cast that cares.", "Dull, slow and long.",
                                      "The end, however", "is a joy to watch."]
    assert review_to_clauses("<br />") == []
    assert SPLITTERS["clause"] is review_to_clauses
