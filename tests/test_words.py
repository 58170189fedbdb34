"""The words of items: varied descriptions read back by the rule parser; the lexicon's halves never
share a phrasing, so that the held-out half measures reading, not recognising."""

from __future__ import annotations

import numpy as np
import pytest

from modiste.data import Dataset
from modiste.design.dual import ATTRIBUTES, TextVocabulary
from modiste.design.words import HELD_OUT, LEXICON, TRAIN, Phrasebook


@pytest.fixture(scope="module")
def world(tiny_world):
    ds = Dataset(tiny_world)
    return ds, Phrasebook(TextVocabulary.from_items(ds.items))


def _item(ds, row):
    item = ds.items.iloc[row]
    return str(item["category"]), {a: str(item[a]) for a in ATTRIBUTES}


def test_training_words_are_read_back_exactly(world):
    ds, book = world
    rng = np.random.default_rng(0)
    for row in range(60):
        category, values = _item(ds, row)
        text = book.describe(category, values, rng, TRAIN)
        found, given = book.parse(text)
        assert book.vocab.categories[found] == category, text
        assert given == values, text


def test_held_out_words_name_the_category_but_are_not_in_the_parsers_lexicon(world):
    ds, book = world
    rng = np.random.default_rng(1)
    misread = 0
    for row in range(60):
        category, values = _item(ds, row)
        text = book.describe(category, values, rng, HELD_OUT)
        found, given = book.parse(text)
        assert book.vocab.categories[found] == category, text
        misread += sum(given.get(a) != v for a, v in values.items())
    assert misread > 60 * 3  # most attributes go unread: the parser knows only the training half


def test_the_halves_share_no_phrasing():
    for attribute, values in LEXICON.items():
        train = {p for phrases in values.values() for p in phrases.train}
        held_out = {p for phrases in values.values() for p in phrases.held_out}
        assert not train & held_out, attribute


def test_partial_descriptions_say_some_attributes_in_varied_order(world):
    ds, book = world
    rng = np.random.default_rng(2)
    category, values = _item(ds, 0)
    texts = [book.describe(category, values, rng, TRAIN, keep=0.5) for _ in range(40)]
    counts = [len(book.parse(t)[1]) for t in texts]
    assert min(counts) >= 1 and max(counts) < len(ATTRIBUTES) + 1 and np.mean(counts) < 5
    assert len(set(texts)) > 30


def test_a_noun_silhouette_names_its_category_and_unknown_words_fail_clearly(world):
    _, book = world
    category, given = book.parse("a pair of scarlet trainers")
    assert book.vocab.categories[category] == "shoes" and given == {"color": "red", "silhouette": "sneaker"}
    with pytest.raises(ValueError, match="names no category"):
        book.parse("something nice")
