"""Train the dual-diffusion transformer into a run directory, in stages, with checkpoints and resume.

Stages (`modiste train dual --stage ...`), each continuing from the run's model:

- pretrain: every catalogue item, its picture and attribute text for its category, no other
  condition: the model learns what items look like and how pictures and words go together;
- condition: every (training outfit, blank) pair: the blank item is the target; its conditions
  are the rest of the outfit, the owner's preference in the blank's category and their history
  mean there (both from their training interactions, the target left out).
- text-aug: text-augmented fine-tuning of the text branch alone (`DualDiT.text_branch`; the image
  stream is frozen). Every catalogue item and every condition-stage example, now with a description
  in words as a condition: one of `phrasings` varied descriptions of the target written by
  `modiste.design.words` (synonyms, order, openings, each attribute said with chance
  `attribute_said`), read by the packaged sentence encoder (`modiste.sentences`). The model learns to
  draw and write what a description asks, whatever its phrasing. Half of the condition-stage
  examples keep no description, so that PFITB, which has none, stays as it was.
- decoder: the model's own decoder alone (`modiste.design.dual_decoder`: the codec's decoder,
  refined, with the words modulating it), on every catalogue item's latent, words and picture,
  against a critic that judges the picture beside the words (kept in the stage's state, not in the
  model). The latent space does not move (the codec's encoder is frozen), so the network needs no
  retraining.

A run directory holds:

    run.json            settings, the dataset, the stages run
    state-STAGE.pt      the latest training state of a stage (weights, optimizer, random state,
                        epoch, step), written atomically, read with the restricted unpickler
    model/              the model to use (safetensors + JSON), after every epoch
    metrics.json, log.txt   one row per epoch: losses, seconds, examples per second
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from modiste.config import with_overrides
from modiste.data import Dataset
from modiste.design.dual import ATTRIBUTES, Conditions, DualConfig, DualDiT, TextVocabulary
from modiste.design.dual_decoder import WordsCritic
from modiste.io import atomic_path, write_json
from modiste.outfit.data import OutfitData
from modiste.training import EpochLoop
from modiste.vision.common import resolve_device, to_unit_range
from modiste.vision.encoder import dataset_features
from modiste.vision.latent import CodecConfig, dataset_codec, dataset_latents

RUN, MODEL, METRICS, LOG = "run.json", "model", "metrics.json", "log.txt"
STAGES = ("pretrain", "condition", "text-aug", "decoder")


@dataclass
class DualTrainConfig:
    """epochs: passes over the stage's examples; batch_size, lr, weight_decay: AdamW;
    max_minutes: stop after this much training time of the stage; history_len: the latest items of a
    user's history in the category that make their preference and history conditions;
    threads: torch CPU threads; device: cpu, cuda or auto; checkpoint_every_s: seconds between
    mid-epoch checkpoints; phrasings, attribute_said: the text-aug stage's descriptions per item and
    the chance each attribute is named in one; adversarial_weight, decoder_average: the decoder
    stage's critic weight and weight averaging."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    max_minutes: float | None = 45.0
    history_len: int = 10
    threads: int | None = 1
    device: str = "cpu"
    checkpoint_every_s: float = 60.0
    phrasings: int = 3
    attribute_said: float = 0.75
    # The decoder stage. How much the critic's verdict counts beside the reconstruction: an L1 decoder
    # cannot draw a texture whose phase the latent does not keep (the average of all phases is flat);
    # the critic makes it draw one. A probe (14 minutes, one thread): the attributes read back 0.70
    # with words against 0.69 without the critic, material 0.53 against 0.42, and a chosen item keeps
    # 1.56 of its 2.19 utility against 1.34; at 0.5, tinted backgrounds for about the same reading.
    adversarial_weight: float = 0.1
    # The decoder saved is the moving average of its weights (per step), which smooths the colour
    # casts that a decoder trained against a critic drifts through from one step to the next.
    decoder_average: float = 0.995
    seed: int = 0


class DualExamples:
    """What the dual model trains on, as arrays of item rows, with its batches built on demand.
    `latents` (n_items, C, 16, 16): the items' pictures through the codec (None where only
    conditions are asked for, as when generating); `descriptions` (n_items, phrasings, D): sentence
    embeddings of descriptions of every item (the text-aug stage's)."""

    def __init__(self, ds: Dataset, vocab: TextVocabulary, features: np.ndarray, latents: np.ndarray | None = None,
                 history_len: int = 10, descriptions: np.ndarray | None = None):
        self.ds, self.vocab, self.history_len, self.latents = ds, vocab, history_len, latents
        self.descriptions = descriptions
        self.data = OutfitData(ds)
        if self.data.categories != vocab.categories:
            raise ValueError(f"the model's categories ({', '.join(vocab.categories)}) are not the dataset's "
                             f"({', '.join(self.data.categories)})")
        items = ds.items
        self.text = vocab.encode(items[list(ATTRIBUTES)].to_dict("records"))  # (n_items, 6)
        self.category = torch.from_numpy(self.data.item_category)
        self.allowed = vocab.allowed()
        self.features = torch.from_numpy(np.asarray(features, np.float32))
        outfits = self.data.outfits("train")
        width = outfits.items.shape[1]
        present = outfits.items >= 0
        o, b = np.nonzero(present)  # one example per (outfit, blank position)
        self.target = outfits.items[o, b]
        self.user = outfits.users[o]
        others = np.array([[k for k in range(width) if k != j] for j in range(width)], np.int64)
        self.context = outfits.items[o[:, None], others[b]]  # (E, width - 1), -1 padded

    def count(self, stage: str) -> int:
        return {"pretrain": self.data.n_items, "condition": len(self.target),
                "text-aug": self.data.n_items + len(self.target), "decoder": self.data.n_items}[stage]

    def batch(self, stage: str, rows: np.ndarray, rng: np.random.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, Conditions]:
        """(latents, attribute ids, conditions) of the examples `rows` of a stage; `rng` picks the
        text-aug stage's descriptions."""
        if stage in ("pretrain", "decoder"):
            items = rows
            cond = Conditions(category=self.category[items])
        elif stage == "condition":
            items = self.target[rows]
            cond = self.conditions(self.user[rows], items, self.context[rows])
        else:  # text-aug: rows below n_items are catalogue items alone, the rest condition examples
            alone = rows < self.data.n_items
            example = np.where(alone, 0, rows - self.data.n_items)
            items = np.where(alone, rows, self.target[example])
            cond = self.conditions(np.where(alone, -1, self.user[example]), items,
                                   np.where(alone[:, None], -1, self.context[example]))
            rng = rng or np.random.default_rng()
            phrasing = rng.integers(self.descriptions.shape[1], size=len(rows))
            described = alone | (rng.random(len(rows)) < 0.5)
            cond.description = torch.from_numpy(self.descriptions[items, phrasing] * described[:, None])
        return _in_order(self.latents, items).float(), self.text[items], cond

    def pictures(self, items: np.ndarray) -> torch.Tensor:
        """The items' pictures (N, 3, 64, 64) in [-1, 1]."""
        return to_unit_range(_in_order(self.ds.images, items))

    def conditions(self, users: np.ndarray, items: np.ndarray, context: np.ndarray,
                   categories: np.ndarray | None = None) -> Conditions:
        """Conditions for generating `items` (or, with `categories`, a new item of each category) for
        `users` (-1: none) beside the outfit items `context` (N, L), -1 padded. The target item is
        left out of the user's history."""
        categories = self.data.item_category[items] if categories is None else np.asarray(categories)
        history = self.data.user_history(users, categories, self.history_len)
        if items is not None:
            history = np.where(history == np.asarray(items)[:, None], -1, history)
        valid = torch.from_numpy(history >= 0)
        rows = torch.from_numpy(history.clip(min=0))
        preference = _mode(self.text[rows], valid, self.vocab)
        counts = valid.sum(1, keepdim=True).clamp(min=1)
        mean = (self.features[rows] * valid[..., None]).sum(1) / counts  # zeros without history
        ctx = torch.from_numpy(context)
        return Conditions(category=torch.from_numpy(categories), preference=preference, history=mean,
                          outfit=self.features[ctx.clamp(min=0)],
                          outfit_category=torch.where(ctx >= 0, self.category[ctx.clamp(min=0)], -1))

    def preferred_words(self, users: np.ndarray, items: np.ndarray | None, categories: np.ndarray | None = None,
                        temperature: float = 0.0, seed: int = 0) -> torch.Tensor:
        """(N, 6) attribute ids: the words to draw for `users` (-1: none), for a new item of each
        item's category (or of `categories`); the items are left out of the history. Per attribute,
        the value the user chose most often among those the category's items have, counting the
        latest `history_len` items of their history in every category, and those of this category a
        second time; [MASK] (the model writes it) where they chose none. With `temperature` T > 0
        each value is drawn instead, with probability proportional to count^(1/T) (1: as often as
        the user chose it), for items that differ from one another.

        The whole history counts, not the category's alone as in the preference condition (DualFashion's
        and what the model was trained with): a colour, material or style liked in one category is
        evidence for the next, and a category alone holds a handful of items. On the default world's
        200 benchmark questions the words were worth 4.54 of oracle utility, drawn exactly, against
        2.95 from the category alone and 2.34 for the items the users chose (2026-11-29)."""
        users = np.asarray(users)
        categories = self.data.item_category[items] if categories is None else np.asarray(categories)
        n, n_categories = len(users), len(self.vocab.categories)
        everywhere = self.data.user_history(np.repeat(users, n_categories), np.tile(np.arange(n_categories), n),
                                            self.history_len).reshape(n, -1)
        here = self.data.user_history(users, categories, self.history_len)
        history = np.concatenate([everywhere, here], axis=1)
        if items is not None:
            history = np.where(history == np.asarray(items)[:, None], -1, history)
        valid = torch.from_numpy(history >= 0).float()
        ids = self.text[torch.from_numpy(history.clip(min=0))]  # (N, H, 6)
        allowed = self.allowed[torch.from_numpy(categories)]  # (N, 6, widest table)
        generator = torch.Generator().manual_seed(seed)
        words = []
        for k, a in enumerate(ATTRIBUTES):
            n_values = len(self.vocab.values[a])
            counts = torch.zeros(n, self.vocab.size(a)).scatter_add_(1, ids[..., k], valid)[:, :n_values]
            counts = counts * allowed[:, k, :n_values]
            chosen = counts.amax(1) > 0
            if temperature > 0:
                # softmax(log(count) / T): count^(1/T) without overflow; a row with no count draws anything
                logits = torch.where(chosen[:, None], counts.log() / temperature, torch.zeros_like(counts))
                value = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator)[:, 0]
            else:
                value = counts.argmax(1)
            words.append(torch.where(chosen, value, self.vocab.mask(a)))
        return torch.stack(words, dim=1)


def _in_order(array: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """array[rows] as a tensor, read in sorted order (a memmap reads sorted rows fastest)."""
    out = torch.from_numpy(np.asarray(array[np.sort(rows)]))
    return out[np.argsort(np.argsort(rows))]


def _mode(ids: torch.Tensor, valid: torch.Tensor, vocab: TextVocabulary) -> torch.Tensor:
    """Per row and attribute, the most frequent value among the valid ids (N, H, 6); "unknown" when
    no id is valid. Ties go to the value first in the vocabulary."""
    out = []
    for k, a in enumerate(ATTRIBUTES):
        counts = torch.zeros(len(ids), vocab.size(a)).scatter_add_(1, ids[..., k], valid.float())
        counts = counts[:, :len(vocab.values[a])]
        out.append(torch.where(counts.sum(1) > 0, counts.argmax(1), vocab.unknown(a)))
    return torch.stack(out, dim=1)


def train_dual(data_dir: str | Path, run_dir: str | Path, stage: str = "pretrain", model_overrides: dict | None = None,
               train_overrides: dict | None = None, resume: bool = True, progress: bool = True,
               codec_config: CodecConfig | None = None) -> DualDiT:
    """Train (or resume) one stage of the dual model; returns the trained model (eval mode). The
    dataset's latent codec is trained first if it is not cached yet (`codec_config`)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}")
    run_dir = Path(run_dir)
    ds = Dataset(data_dir)
    if not ds.has_images:
        raise ValueError(f"dataset '{ds.name}' has no images: the dual model draws pictures")
    missing = [a for a in ATTRIBUTES if a not in ds.items]
    if missing:
        raise ValueError(f"dataset '{ds.name}' has no {', '.join(missing)} column in items.parquet: "
                         f"the dual model writes every attribute")
    train_config = with_overrides(DualTrainConfig(), train_overrides)
    saved = json.loads((run_dir / RUN).read_text()) if (run_dir / RUN).exists() else None
    if saved and (saved.get("task") != "dual" or saved["data"]["name"] != ds.name):
        raise ValueError(f"{run_dir} is another run ({saved.get('task')} on '{saved['data']['name']}'); "
                         f"choose another --out")
    if saved and (run_dir / MODEL).exists():
        model = DualDiT.load(run_dir / MODEL)  # a later stage continues from the model so far
        if model_overrides:
            raise ValueError(f"{run_dir} already holds a model: its settings cannot change (drop --set)")
    else:
        model = DualDiT(with_overrides(DualConfig(), model_overrides), TextVocabulary.from_items(ds.items),
                        dataset_codec(ds, codec_config, progress), meta={"dataset": ds.name})
    if stage in ("text-aug", "decoder") and not (saved and (run_dir / MODEL).exists()):
        raise ValueError(f"{run_dir} holds no model yet: the {stage} stage fine-tunes one "
                         f"(train --stage pretrain, then condition, first)")
    if stage == "text-aug":
        if not model.config.text_stream:
            raise ValueError(f"{run_dir} is an image-only model: it has no text branch to fine-tune")
        model.meta["reads_descriptions"] = True
    stages = [s for s in (saved or {}).get("stages", []) if s["stage"] != stage]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN, {"task": "dual", "model_config": asdict(model.config),
                               "stages": stages + [{"stage": stage, "train_config": asdict(train_config)}],
                               "data": {"path": str(Path(data_dir).resolve()), "name": ds.name}})
    threads_before = torch.get_num_threads()
    torch.set_num_threads(train_config.threads or os.cpu_count() or 1)
    try:
        latents = dataset_latents(ds, codec_config, progress)
        descriptions = (item_descriptions(ds, model.vocab, train_config.phrasings, train_config.attribute_said,
                                          progress) if stage == "text-aug" else None)
        examples = DualExamples(ds, model.vocab, dataset_features(ds), latents, train_config.history_len,
                                descriptions)
        _Trainer(model, examples, stage, train_config, run_dir).run(resume, progress)
    finally:
        torch.set_num_threads(threads_before)
    return DualDiT.load(run_dir / MODEL)


def item_descriptions(ds: Dataset, vocab: TextVocabulary, phrasings: int, attribute_said: float,
                      progress: bool = False) -> np.ndarray:
    """(n_items, phrasings, D) float32: sentence embeddings of `phrasings` descriptions of every item,
    written with the lexicon's training half, cached by their text."""
    from modiste.cache import dataset_cache
    from modiste.design.words import Phrasebook
    from modiste.sentences import cached_embeddings, embedding_key, shared_encoder

    book, rng = Phrasebook(vocab), np.random.default_rng(0)
    records = ds.items[["category", *ATTRIBUTES]].to_dict("records")
    texts = [book.describe(str(r["category"]), {a: None if pd.isna(r[a]) else str(r[a]) for a in ATTRIBUTES},
                           rng, keep=attribute_said)
             for r in records for _ in range(phrasings)]
    encoder = shared_encoder()
    path = dataset_cache(ds, "descriptions", f"{embedding_key(texts, encoder.name)}.npy")
    return cached_embeddings(encoder, texts, path, progress).reshape(len(records), phrasings, -1)


class _Trainer(EpochLoop):
    def __init__(self, model: DualDiT, examples: DualExamples, stage: str, config: DualTrainConfig, run_dir: Path):
        super().__init__(config.epochs, config.batch_size, config.max_minutes, config.checkpoint_every_s)
        self.model, self.examples, self.stage, self.config, self.run_dir = model, examples, stage, config, run_dir
        self.device = resolve_device(config.device)
        model.to(self.device)
        self.label = f"dual {stage}"
        # text-aug fine-tunes the text branch alone, decoder the decoder alone; the rest keeps no
        # gradient (less to compute)
        self.learning = {"text-aug": model.text_branch(), "decoder": list(model.decoder.parameters())}.get(
            stage, model.trainable())
        learning = {id(q) for q in self.learning}
        for parameter in model.parameters():
            parameter.requires_grad_(id(parameter) in learning)
        # The decoder stage is a GAN's generator step beside its critic (`WordsCritic`): the usual
        # GAN momentum (beta1 0.5) for both, so that neither lags the other's moves.
        betas = (0.5, 0.9) if stage == "decoder" else (0.9, 0.999)
        self.opt = torch.optim.AdamW(self.learning, lr=config.lr, betas=betas, weight_decay=config.weight_decay)
        self.critic = WordsCritic.for_decoder(model.decoder).to(self.device) if stage == "decoder" else None
        self.critic_opt = (torch.optim.AdamW(self.critic.parameters(), lr=config.lr, betas=betas,
                                             weight_decay=config.weight_decay) if self.critic else None)
        self.average = (AveragedModel(model.decoder, multi_avg_fn=get_ema_multi_avg_fn(config.decoder_average))
                        if stage == "decoder" else None)
        self.random = torch.Generator().manual_seed(config.seed)
        self.state_path = run_dir / f"state-{stage}.pt"
        self.history: list[dict] = []

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.config.seed, epoch]).permutation(self.examples.count(self.stage))

    def train_step(self, rows: np.ndarray) -> dict[str, float]:
        self.model.train()
        rng = np.random.default_rng([self.config.seed, self.epoch, self.step])  # the same after a resume
        latents, text, cond = self.examples.batch(self.stage, rows, rng)
        latents, text, cond = latents.to(self.device), text.to(self.device), cond.to(self.device)
        if self.stage == "decoder":
            pictures = self.examples.pictures(rows).to(self.device)
            loss, parts, made = self.model.decoder_loss(latents, text, cond.category, pictures, self.critic,
                                                        self.config.adversarial_weight, self.random)
        else:
            loss, parts = self.model.loss(latents, text, cond, self.random)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.learning, 1.0)
        self.opt.step()
        if self.average is not None:
            self.average.update_parameters(self.model.decoder)
        if self.critic is not None:  # then the critic learns from the same real pictures and the ones made
            critic_loss = self.critic.hinge_loss(pictures, made, self.model.critic_words(text), cond.category)
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
            parts["critic"] = float(critic_loss.detach())
        return parts

    def finish(self) -> None:
        if not (self.run_dir / MODEL).exists():  # epochs=0: the untrained model is what there is
            self.model.save(self.run_dir / MODEL)

    def end_epoch(self, losses: list[dict[str, float]], seconds: float, partial: bool) -> None:
        batch_size = min(self.config.batch_size, self.examples.count(self.stage))
        row = {"stage": self.stage, "epoch": self.epoch + 1, "partial": partial,
               "image_loss": float(np.mean([p["image"] for p in losses])) if losses else None,
               "text_loss": float(np.mean([p["text"] for p in losses])) if losses and "text" in losses[0] else None,
               **{f"{k}_loss": float(np.mean([p[k] for p in losses])) for k in ("adversarial", "critic")
                  if losses and k in losses[0]},
               "seconds": round(seconds, 2), "train_seconds": round(self.train_seconds, 2),
               "examples_per_second": round(len(losses) * batch_size / max(seconds, 1e-9), 1)}
        self.history.append(row)
        self.model.meta["history"] = self.model.meta.get("history", [])[:] + [row]
        with self._published():
            self.model.save(self.run_dir / MODEL)
        metrics = json.loads((self.run_dir / METRICS).read_text()) if (self.run_dir / METRICS).exists() else {}
        write_json(self.run_dir / METRICS, {**metrics, self.stage: {"history": self.history,
                                                                    "train_seconds": self.train_seconds}})
        with open(self.run_dir / LOG, "a") as log:
            log.write(json.dumps(row) + "\n")

    @contextmanager
    def _published(self):
        """The model as it is saved: in the decoder stage, with the moving average of the decoder's weights."""
        if self.average is None:
            yield
            return
        live = {k: v.clone() for k, v in self.model.decoder.state_dict().items()}
        self.model.decoder.load_state_dict(self.average.module.state_dict())
        try:
            yield
        finally:
            self.model.decoder.load_state_dict(live)

    def checkpoint(self) -> None:
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "random": self.random.get_state(),
                 "history": json.dumps(self.history), "epoch": self.epoch, "step": self.step,
                 "train_seconds": self.train_seconds}
        if self.critic is not None:
            state |= {"critic": self.critic.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                      "average": self.average.state_dict()}
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)

    def restore(self) -> None:
        state = torch.load(self.state_path, weights_only=True, map_location=self.device)  # the restricted unpickler
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_opt.load_state_dict(state["critic_opt"])
            self.average.load_state_dict(state["average"])
        self.random.set_state(state["random"].cpu())
        self.history = json.loads(state["history"])
        self.epoch, self.step, self.train_seconds = state["epoch"], state["step"], state["train_seconds"]
