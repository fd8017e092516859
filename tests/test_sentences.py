"""Sentences: cleaning raw reviews and splitting them into sentences."""

import pytest

from seqvae.sentences import clean_text, review_to_sentences, split_sentences


# ---------------------------------------------------------------------------- cleaning
def test_clean_text_html_breaks_tags_entities():
    raw = "Great film!<br /><br />I loved it &amp; my wife too.<BR>The <i>end</i> &quot;scene&quot;<br/>ok"
    assert clean_text(raw) == 'Great film!\nI loved it & my wife too.\nThe end "scene"\nok'
    assert clean_text("a<br >b< br / >c<p>d</p>e") == "a\nb\nc\nd\ne"
    assert clean_text("<3 and a < b > c") == "<3 and a < b > c"  # not tags


def test_clean_text_whitespace_unicode_and_cp1252():
    assert clean_text("  lots\tof \u00a0 space \n\n\n here  ") == "lots of space\nhere"
    assert clean_text("\ufb01ne \uff21\uff22") == "fine AB"                    # NFKC
    assert clean_text("wait\x85 then\x96now") == "wait... then\u2013now"     # Windows-1252 leftovers
    assert clean_text("don\u00b4t \u201cquote\u201d it\u2019s") == "don't \"quote\" it's"
    assert clean_text("&#8230; &eacute;") == "... \u00e9"


# ---------------------------------------------------------------------------- splitting
SPLIT_CASES = [
    ("Mr. Smith went to Washington. He liked it.", ["Mr. Smith went to Washington.", "He liked it."]),
    ("Mrs. Jones and Dr. Who met at St. Paul's. Then vs. now.", ["Mrs. Jones and Dr. Who met at St. Paul's.", "Then vs. now."]),
    ("J. R. R. Tolkien wrote it. George W. Bush read it.", ["J. R. R. Tolkien wrote it.", "George W. Bush read it."]),
    ("I gave it 3.5 stars. It cost $4.99 in 1999. Sad.", ["I gave it 3.5 stars.", "It cost $4.99 in 1999.", "Sad."]),
    ("Well... maybe not. Wait... This is it?! Yes.", ["Well... maybe not.", "Wait...", "This is it?!", "Yes."]),
    ('"Really?" she asked. "Go away!" He left.', ['"Really?" she asked.', '"Go away!"', "He left."]),
    ("He said 'go.' Then he went.", ["He said 'go.'", "Then he went."]),
    ("(It was great.) Then it ended [sadly.] The end", ["(It was great.)", "Then it ended [sadly.]", "The end"]),
    ("Why?! Why?!? Awful!!! Great???", ["Why?!", "Why?!?", "Awful!!!", "Great???"]),
    ("Cats, dogs, etc. are fine. I saw cats, etc. The end.", ["Cats, dogs, etc. are fine.", "I saw cats, etc.", "The end."]),
    ("See e.g. the first one, i.e. the best.", ["See e.g. the first one, i.e. the best."]),
    ("Made in the U.S. The U.S. Army helps. A Ph.D. student.", ["Made in the U.S.", "The U.S. Army helps.", "A Ph.D. student."]),
    ("It was No. 5 on the list. I said no. So was I. Jr. is here",
     ["It was No. 5 on the list.", "I said no.", "So was I.", "Jr. is here"]),
    ("I loved this film.The acting was great.", ["I loved this film.", "The acting was great."]),
    ("First line without stop\nsecond line. third", ["First line without stop", "second line.", "third"]),
    ("*** spoilers *** ... ? Fine. Great! :) Bye", ["*** spoilers *** ... ?", "Fine.", "Great! :) Bye"]),
    ("***\n...\nOk", ["Ok"]),  # pieces without a letter or digit are not sentences
    ("", []),
]


def test_review_to_sentences_uses_br_as_boundary():
    raw = "A fine film<br /><br />The end was sad... but good!<br />10/10 <i>would</i> watch again"
    assert review_to_sentences(raw) == ["A fine film", "The end was sad... but good!", "10/10 would watch again"]
    assert review_to_sentences("<br /><br />") == []


@pytest.mark.parametrize("text,expected", SPLIT_CASES)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected
