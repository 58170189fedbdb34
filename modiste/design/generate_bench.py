"""`modiste bench generate`: generative outfit recommendation, the dual model against its baselines,
judged in one run (DiFashion's and DualFashion's protocol, modiste's own encoder and classifier in
place of CLIP and Inception, which cannot be downloaded here).

PFITB. A seeded sample of the test split's hard questions (an outfit, its blank, the owner, five
candidates of the blank's category). Every generator makes `samples` items for each question:

- "dual diffusion": picture and words together, from the category, the user's preference and
  history in the category, and the rest of the outfit (classifier-free guidance);
- "dual diffusion, the user's preferred words": the same model given the user's preferred value
  of each attribute, counted over their whole history (`DualExamples.preferred_words`), as the
  words (`sample_blanks(words="preference")`), drawing the picture to them with guidance on the
  words (`words_guidance`);
- "dual diffusion, preferred words spread": the same, each question's words drawn from the user's
  history with probability proportional to count^(1/`spread`), for items that differ;
- "dual diffusion, preferred words, generate then rank": `pool` items per question made as the
  row above makes them, the one the user's learned models like best kept
  (`modiste.design.dual_rank`: DVBPR's taste and the outfit model's fit; given a DVBPR run and/or
  an outfit run);
- "image-only diffusion": the same backbone trained without words (DiFashion-like: category,
  history images, outfit); its words come from the dual model captioning its picture, which is
  what a user of an image-only model would do to describe it;
- "GAN": design I's category GAN (neither user nor outfit), captioned the same way;
- "retrieval": the outfit run's best of the five candidates (the non-generative reference; its
  words are the catalogue's);
- "the user's choice" and "random item of the category": real items, for scale.

Metrics, per row (means over questions and samples):

- fid, fid per category: against all real items of the category (`modiste.design.metrics`);
- category_accuracy, inception_score: the attribute classifier (`modiste.vision.probe`, trained
  here on real items) reads the category; IS = exp(E KL(p(c|x) || p(c)));
- alignment: share of the six attributes where the classifier's reading of the picture equals
  the row's words (text-image agreement);
- image_personalization: cosine between the picture's encoder feature and the mean feature of the
  user's history in the category (the target item left out); text_personalization: share of
  attributes where the words equal the user's most frequent value in the category;
- compatibility_model: the outfit run's compatibility of the completed outfit (the generated
  item read as category + classifier attributes + encoder feature, with no id);
  compatibility_oracle: the synthetic world's true compatibility of it (classifier reading);
- retrieval_hard, retrieval_random: the candidate nearest (encoder cosine) to the generated
  picture is the true item, on the hard and on the dataset's own candidate sets (chance 0.2);
- diversity: 1 - mean pairwise cosine among the samples of a question;
- utility: the world's true taste + body suitability of the user for the item the classifier
  reads (no look, no quality: a generated item has neither), beside the same for the user's choice.

GOR: for a seeded sample of users, a whole outfit of the given categories, item by item, each
made beside the ones made before; compatibility (oracle, outfit model), category accuracy and
image personalization. Text to image: the dual model draws random items' true descriptions
(guidance `words_guidance` on the words); the classifier's agreement with the given words. Image
to text: the dual model captions the same items' real pictures; the written value against the
true one.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from modiste.data import Dataset
from modiste.data.world import rules
from modiste.design.bench import attribute_classifier, oracle_utility
from modiste.design.dual import ATTRIBUTES, Conditions, DualDiT
from modiste.design.dual_api import GUIDANCE, WORDS_GUIDANCE, generate_outfits, sample_blanks
from modiste.design.dual_train import DualExamples
from modiste.design.dual_rank import Judges, sample_ranked
from modiste.design.metrics import FIDReference, diversity, encode, fid_encoder
from modiste.io import write_json
from modiste.outfit.api import load_run as load_outfit_run
from modiste.outfit.candidates import questions_for
from modiste.outfit.evaluate import model_compatibility
from modiste.progress import Progress
from modiste.vision.common import to_uint8, to_unit_range, torch_threads
from modiste.vision.encoder import dataset_features

DUAL, PREFERRED, SPREAD, RANKED, IMAGE_ONLY, GAN, RETRIEVAL, CHOICE, RANDOM = (
    "dual diffusion (modiste)", "dual diffusion, the user's preferred words (modiste)",
    "dual diffusion, preferred words spread (modiste)",
    "dual diffusion, preferred words, generate then rank (modiste)", "image-only diffusion (DiFashion-like)",
    "GAN (design I)", "retrieval: outfit model's best candidate", "the user's choice (real)",
    "random item of the category (real)")


SHORT = {DUAL: "dual", PREFERRED: "dual, preferred words", SPREAD: "dual, spread words", IMAGE_ONLY: "image-only",
         GAN: "GAN"}  # sheet labels


@dataclass
class GenerateBenchConfig:
    """questions: PFITB questions sampled from the test hard set; samples: items made per question;
    steps: sampling steps; guidance: classifier-free guidance scale per condition; gor_users,
    gor_categories: the GOR sample; text_items: held-out items whose descriptions are drawn;
    probe_items, probe_epochs: the attribute classifier; pool: generate-then-rank's items made per
    question (the best kept; with judges); words_guidance: the guidance on the words of the
    preferred-words rows (1: none); spread: the temperature of the spread preferred-words row (0:
    no such row); threads: torch threads."""

    questions: int = 200
    samples: int = 4
    steps: int = 20
    guidance: dict[str, float] = field(default_factory=lambda: dict(GUIDANCE))
    gor_users: int = 24
    gor_categories: tuple[str, ...] = ("top", "trousers", "shoes", "bag")
    text_items: int = 200
    probe_items: int = 10000
    probe_epochs: int = 6
    pool: int = 2
    words_guidance: float = WORDS_GUIDANCE
    spread: float = 0.5
    batch_size: int = 128
    threads: int = 2
    seed: int = 0


@dataclass
class Made:
    """What one row made for the questions: pictures (Q, S, 64, 64, 3) and words as attribute
    values per picture (dict attribute -> (Q, S) strings), or None for a row without words."""

    pictures: np.ndarray
    words: dict[str, np.ndarray] | None


def generate_report(data_dir: str | Path, dual_run: str | Path, out: str | Path, image_only_run: str | Path | None = None,
                    gan_run: str | Path | None = None, outfit_run: str | Path | None = None,
                    config: GenerateBenchConfig | None = None, progress: bool = True,
                    rec_run: str | Path | None = None) -> dict:
    """The benchmark; `rec_run` (a DVBPR run) and `outfit_run` also judge generate-then-rank's pools."""
    config = config or GenerateBenchConfig()
    with torch_threads(config.threads):
        return _Bench(Path(data_dir), dual_run, image_only_run, gan_run, outfit_run, rec_run, Path(out),
                      config).run(progress)


class _Bench:
    def __init__(self, data_dir: Path, dual_run, image_only_run, gan_run, outfit_run, rec_run, out: Path,
                 config: GenerateBenchConfig):
        from modiste.data.world.oracle import Oracle
        from modiste.design.dual_api import load_run

        self.config, self.out = config, out
        self.ds = Dataset(data_dir)
        self.dual, dual_ds = load_run(dual_run)
        if dual_ds.name != self.ds.name:
            raise ValueError(f"{dual_run} was trained on '{dual_ds.name}', not on '{self.ds.name}'")
        self.image_only = None
        if image_only_run is not None:
            self.image_only, other = load_run(image_only_run)
            if other.name != self.ds.name or self.image_only.config.text_stream:
                raise ValueError(f"{image_only_run} is not an image-only dual run on '{self.ds.name}' "
                                 "(train one with --set text_stream=false)")
        self.gan = _load_gan(gan_run, self.ds) if gan_run is not None else None
        self.outfits = load_outfit_run(outfit_run, self.ds.path) if outfit_run is not None else None
        self.judges = None
        if config.pool > 1 and (rec_run is not None or outfit_run is not None):
            self.judges = Judges.load(rec_run, outfit_run, self.ds.name)
        self.oracle = Oracle.load(data_dir) if (data_dir / "oracle").exists() else None
        self.runs = {"dual": str(dual_run), "image_only": str(image_only_run), "gan": str(gan_run),
                     "outfit": str(outfit_run), "rec": str(rec_run)}
        self.vocab = self.dual.vocab
        self.features = dataset_features(self.ds)
        self.examples = DualExamples(self.ds, self.vocab, self.features)
        self.categories = self.ds.items["category"].astype(str).to_numpy()

    # ------------------------------------------------------------------ the run

    def run(self, progress: bool) -> dict:
        started, load_start = time.perf_counter(), os.getloadavg()
        c, timings = self.config, {}
        self.out.mkdir(parents=True, exist_ok=True)
        with Progress(enabled=progress) as bar:
            t = time.perf_counter()
            bar.step("attribute classifier")
            self.probe, self.probe_report = attribute_classifier(self.ds, self.out / "probe", c.probe_items,
                                                                 c.probe_epochs, c.threads, c.seed)
            bar.step("FID features of the real items")
            self.encoder = fid_encoder(self.ds)
            self.reference = FIDReference(self.encoder, self.ds.images, self.categories)
            timings["judges_s"] = time.perf_counter() - t

            q = self._questions()
            made: dict[str, Made] = {}
            t = time.perf_counter()
            made[DUAL] = self._diffusion(self.dual, q, bar, "dual diffusion")
            timings["dual_s"] = time.perf_counter() - t
            timings["dual_s_per_item_batched"] = timings["dual_s"] / (len(q["users"]) * c.samples)
            timings["dual_s_one_pfitb_item"] = self._time_one_item(q)
            t = time.perf_counter()
            made[PREFERRED] = self._diffusion(self.dual, q, bar, "dual diffusion, preferred words", words="preference",
                                              guidance={**c.guidance, "words": c.words_guidance})
            timings["preferred_s"] = time.perf_counter() - t
            if c.spread > 0:
                made[SPREAD] = self._diffusion(self.dual, q, bar, "dual diffusion, preferred words spread",
                                               words="preference", temperature=c.spread,
                                               guidance={**c.guidance, "words": c.words_guidance})
            if self.judges is not None:
                t = time.perf_counter()
                bar.step(f"generate then rank: the best of {c.pool}")
                pictures, ids = sample_ranked(self.dual, self.examples, q["users"], q["true"], q["context"], self.judges,
                                              c.pool, 1, c.steps, {**c.guidance, "words": c.words_guidance},
                                              c.seed + 11, c.batch_size, words="preference")
                made[RANKED] = Made(pictures, self._values(ids.reshape(-1, len(ATTRIBUTES)), pictures.shape[:2]))
                timings["ranked_s_per_question"] = (time.perf_counter() - t) / len(q["users"])
            if self.image_only is not None:
                t = time.perf_counter()
                made[IMAGE_ONLY] = self._captioned(self._diffusion(self.image_only, q, bar, "image-only diffusion").pictures)
                timings["image_only_s"] = time.perf_counter() - t
            if self.gan is not None:
                pictures = np.stack([self.gan.sample(c.samples, self.vocab.categories[k], seed=c.seed * 7919 + i)
                                     for i, k in enumerate(q["category"])])
                made[GAN] = self._captioned(pictures)
            if self.outfits is not None:
                made[RETRIEVAL] = self._real(self._retrieved(q))
            made[CHOICE] = self._real(q["true"][:, None])
            rng = np.random.default_rng([c.seed, 3])
            made[RANDOM] = self._real(np.stack([rng.choice(np.flatnonzero(self.categories == self.vocab.categories[k]),
                                                           c.samples) for k in q["category"]]))

            bar.step("PFITB metrics")
            t = time.perf_counter()
            rows, fids = [], {}
            for name, m in made.items():
                row, fids[name] = self._pfitb_metrics(name, m, q)
                rows.append(row)
            timings["metrics_s"] = time.perf_counter() - t

            bar.step("GOR")
            gor = self._gor()
            bar.step("text to image")
            text_to_image = self._text_to_image()
            bar.step("pictures")
            self._pictures(made, q, gor)

        report = {
            "rows": rows, "fid_per_category": fids, "gor": gor["rows"], "text_to_image": text_to_image,
            "targets": _targets(rows, gor["rows"]), "classifier": self.probe_report, "config": asdict(self.config),
            "dataset": self.ds.name, "questions": int(len(q["users"])), "runs": self.runs,
            "training": self._training(),
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                        "load_start": [round(x, 2) for x in load_start],
                        "load_end": [round(x, 2) for x in os.getloadavg()],
                        "seconds": round(time.perf_counter() - started, 1)},
        }
        write_json(self.out / "report.json", report)
        (self.out / "report.md").write_text(markdown(report), encoding="utf-8")
        return report

    # ------------------------------------------------------------------ questions and generation

    def _questions(self) -> dict[str, np.ndarray]:
        """A seeded sample of the test hard questions, with the same blanks' candidates of the
        dataset's own set where it has one."""
        data = self.examples.data
        hard = questions_for(self.ds, "test", "hard").reset_index(drop=True)
        qs = data.questions("test", "hard")
        pick = np.sort(np.random.default_rng([self.config.seed, 1]).choice(
            len(qs), min(self.config.questions, len(qs)), replace=False))
        qs, hard = qs.take(pick), hard.iloc[pick].reset_index(drop=True)
        true = qs.candidates[np.arange(len(qs)), qs.answer]
        out = {"users": qs.users, "context": qs.context, "candidates": qs.candidates, "answer": qs.answer,
               "category": qs.category, "true": true, "outfit_ids": hard["outfit_id"].to_numpy()}
        own = data.question_kinds().get("fitb")
        if own:
            other = questions_for(self.ds, "test", own).reset_index(drop=True)
            index = {(o, int(b)): k for k, (o, b) in enumerate(zip(other["outfit_id"], other["blank_index"]))}
            rows = np.array([index.get((o, int(b)), -1) for o, b in zip(hard["outfit_id"], hard["blank_index"])])
            own_q = data.questions("test", own)
            found = rows >= 0
            out["own_candidates"] = np.where(found[:, None], own_q.candidates[rows.clip(min=0)], -1)
            out["own_answer"] = np.where(found, own_q.answer[rows.clip(min=0)], -1)
        return out

    def _diffusion(self, model: DualDiT, q: dict, bar: Progress, label: str, words: str = "written",
                   temperature: float | None = None, guidance: dict[str, float] | None = None) -> Made:
        c = self.config
        n = len(q["users"])
        rep = np.repeat(np.arange(n), c.samples)
        pictures, ids = sample_blanks(model, self.examples, q["users"][rep], q["true"][rep], q["context"][rep], c.steps,
                                      guidance or c.guidance, c.seed, words, temperature, c.batch_size,
                                      lambda batches: bar.track(batches, label, total=len(batches)))
        pictures = pictures.reshape(n, c.samples, 64, 64, 3)
        if not model.config.text_stream:
            return Made(pictures, None)
        return Made(pictures, self._values(ids, (n, c.samples)))

    def _time_one_item(self, q: dict) -> float:
        """Seconds to make one PFITB item (picture and words) alone, as `modiste generate fitb -n 1`
        does: the median of three."""
        cond = self.examples.conditions(q["users"][:1], q["true"][:1], q["context"][:1])
        seconds = []
        for k in range(3):
            t = time.perf_counter()
            self.dual.sample(cond, steps=self.config.steps, guidance=self.config.guidance, seed=k)
            seconds.append(time.perf_counter() - t)
        return float(np.median(seconds))

    def _captioned(self, pictures: np.ndarray, categories: torch.Tensor | None = None) -> Made:
        """Pictures with the dual model's caption of each (image to text), written for the given
        category codes or else for the category the classifier reads."""
        flat = pictures.reshape(-1, 64, 64, 3)
        category = categories if categories is not None else torch.tensor(
            [self.vocab.categories.index(x) for x in self.probe_category(flat)])
        ids = []
        for start in range(0, len(flat), self.config.batch_size):
            sl = slice(start, start + self.config.batch_size)
            image = to_unit_range(torch.from_numpy(np.ascontiguousarray(flat[sl])))
            ids.append(self.dual.sample(Conditions(category=category[sl]), steps=self.config.steps, image=image,
                                        seed=self.config.seed + start)[1])
        return Made(pictures, self._values(torch.cat(ids), pictures.shape[:2]))

    def probe_category(self, pictures: np.ndarray) -> np.ndarray:
        """The category the classifier reads (captions are written for the category the picture shows)."""
        read = self.probe.predict(pictures)["category"].astype(str)
        return np.where(np.isin(read, self.vocab.categories), read, self.vocab.categories[0])

    def _real(self, rows: np.ndarray) -> Made:
        items = self.ds.items
        pictures = np.asarray(self.ds.images[rows.ravel()]).reshape(*rows.shape, 64, 64, 3)
        return Made(pictures, {a: items[a].astype(str).to_numpy()[rows] for a in ATTRIBUTES})

    def _retrieved(self, q: dict) -> np.ndarray:
        from modiste.outfit.data import Questions

        questions = Questions(ids=np.arange(len(q["users"])), users=q["users"], context=q["context"],
                              candidates=q["candidates"], answer=q["answer"], category=q["category"])
        scores = self.outfits.fitb_scorer(questions)
        return q["candidates"][np.arange(len(scores)), scores.argmax(1)][:, None]

    def _values(self, ids: torch.Tensor, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        decoded = self.vocab.decode(ids)
        return {a: np.array([str(d[a]) for d in decoded], dtype=object).reshape(shape) for a in ATTRIBUTES}

    # ------------------------------------------------------------------ metrics

    def _pfitb_metrics(self, name: str, m: Made, q: dict) -> tuple[dict, dict]:
        n, s = m.pictures.shape[:2]
        flat = m.pictures.reshape(-1, 64, 64, 3)
        users = np.repeat(q["users"], s)
        asked = np.repeat(np.array(self.vocab.categories, dtype=object)[q["category"]], s).astype(str)
        read = {a: np.asarray(v).astype(str) for a, v in self.probe.predict(flat).items()}
        proba = self.probe.predict_proba(flat)["category"]
        feats = encode(self.encoder, flat)
        fid = self.reference.score(flat, asked)
        row = {"model": name, "fid": fid["overall"], "category_accuracy": float(np.mean(read["category"] == asked)),
               "inception_score": _inception_score(proba)}
        if m.words is not None:
            agree = np.stack([read[a] == m.words[a].ravel().astype(str) for a in ATTRIBUTES], axis=1)
            row["alignment"] = float(agree.mean())
            row["alignment_per_attribute"] = {a: float(agree[:, k].mean()) for k, a in enumerate(ATTRIBUTES)}
            preference = self._preference(q)  # (Q, 6) values, None where unknown
            known = np.repeat(preference != None, s, axis=0)  # noqa: E711 (elementwise)
            same = np.stack([m.words[a].ravel().astype(str) == np.repeat(preference[:, k], s).astype(str)
                             for k, a in enumerate(ATTRIBUTES)], axis=1)
            row["text_personalization"] = float(same[known].mean()) if known.any() else None
        history = self._history_mean(q)
        has = np.repeat(np.linalg.norm(history, axis=1) > 0, s)
        row["image_personalization"] = float(_cosine(feats, np.repeat(history, s, axis=0))[has].mean())
        new_codes = self.examples.data.attribute_codes({a: read[a] for a in self.ds.attributes if a in read})
        if self.outfits is not None:
            view, new_rows = self.outfits.model.with_new_items(np.repeat(q["category"], s), new_codes, feats)
            completed = np.concatenate([np.repeat(q["context"], s, axis=0), new_rows[:, None]], axis=1)
            row["compatibility_model"] = float(model_compatibility(view, completed).mean())
        if self.oracle is not None:
            row["compatibility_oracle"] = float(np.mean(self._oracle_compatibility(np.repeat(q["context"], s, axis=0),
                                                                                   read, asked)))
            row["utility"] = float(oracle_utility(self.oracle, users, read).mean())
            if name == CHOICE:
                true = self.oracle.weights[q["users"]] * self.oracle.t["item_features"][q["true"]]
                row["utility_true_attributes"] = float(true.sum(-1).mean())
        row["retrieval_hard"] = self._retrieval(feats, q["candidates"], q["answer"], s)
        if "own_candidates" in q:
            row["retrieval_random"] = self._retrieval(feats, q["own_candidates"], q["own_answer"], s)
        row["diversity"] = float(np.nanmean([diversity(f) for f in feats.reshape(n, s, -1)])) if s > 1 else None
        return row, fid

    def _retrieval(self, feats: np.ndarray, candidates: np.ndarray, answer: np.ndarray, s: int) -> float:
        ok = answer >= 0
        cand = np.repeat(candidates, s, axis=0)
        sims = np.einsum("nd,ncd->nc", _unit(feats), _unit(self.features[cand.clip(min=0)].astype(np.float64)))
        sims[cand < 0] = -np.inf
        return float((sims.argmax(1) == np.repeat(answer, s))[np.repeat(ok, s)].mean())

    def _preference(self, q: dict) -> np.ndarray:
        cond = self.examples.conditions(q["users"], q["true"], q["context"])
        values = np.array(self.vocab.decode(cond.preference), dtype=object)
        return np.array([[r[a] for a in ATTRIBUTES] for r in values], dtype=object)

    def _history_mean(self, q: dict) -> np.ndarray:
        return self.examples.conditions(q["users"], q["true"], q["context"]).history.numpy().astype(np.float64)

    def _oracle_compatibility(self, context: np.ndarray, read: dict[str, np.ndarray], categories: np.ndarray) -> np.ndarray:
        """The world's compatibility of each context + a new item of the asked category, read by the classifier."""
        new = rules.item_codes({**{a: read[a] for a in ("color", "pattern", "style", "material")},
                                "category": categories})
        codes = {k: np.concatenate([v, new[k]]) for k, v in self.oracle.codes.items() if k in new}
        start = len(self.oracle.codes["category"])
        return np.array([self.oracle.rules.outfit(codes, np.append(ctx[ctx >= 0], start + i))
                         for i, ctx in enumerate(context)])

    # ------------------------------------------------------------------ GOR and text to image

    def _gor(self) -> dict:
        c = self.config
        cats = [k for k in c.gor_categories if k in self.vocab.categories]
        codes = [self.vocab.categories.index(k) for k in cats]
        test = self.ds.outfits[self.ds.outfits["split"] == "test"]
        users = self.ds.users.index.get_indexer(test["user_id"].dropna().unique())
        users = np.sort(np.random.default_rng([c.seed, 2]).choice(users[users >= 0], min(c.gor_users, len(users)),
                                                                 replace=False))
        made, words = {}, {}
        made[DUAL], words[DUAL] = generate_outfits(self.dual, self.examples, users, codes, c.steps, c.guidance, c.seed)
        made[PREFERRED], words[PREFERRED] = generate_outfits(self.dual, self.examples, users, codes, c.steps,
                                                             {**c.guidance, "words": c.words_guidance}, c.seed,
                                                             words="preference")
        if self.image_only is not None:
            made[IMAGE_ONLY] = generate_outfits(self.image_only, self.examples, users, codes, c.steps, c.guidance, c.seed)[0]
        if self.gan is not None:
            made[GAN] = np.stack([self.gan.sample(len(users), k, seed=c.seed + 31 * j) for j, k in enumerate(cats)], axis=1)
        rows = []
        for name, pictures in made.items():
            flat = pictures.reshape(-1, 64, 64, 3)
            read = {a: np.asarray(v).astype(str) for a, v in self.probe.predict(flat).items()}
            asked = np.tile(np.array(cats, dtype=object), len(users)).astype(str)
            feats = encode(self.encoder, flat)
            history = self.examples.conditions(np.repeat(users, len(cats)), None, np.full((len(flat), 1), -1),
                                               categories=np.tile(codes, len(users))).history.numpy()
            has = np.linalg.norm(history, axis=1) > 0
            row = {"model": name, "category_accuracy": float(np.mean(read["category"] == asked)),
                   "image_personalization": float(_cosine(feats, history.astype(np.float64))[has].mean())}
            if self.outfits is not None:
                view, new_rows = self.outfits.model.with_new_items(
                    np.tile(codes, len(users)), self.examples.data.attribute_codes(
                        {a: read[a] for a in self.ds.attributes if a in read}), feats)
                row["compatibility_model"] = float(model_compatibility(view, new_rows.reshape(len(users), -1)).mean())
            if self.oracle is not None:
                new = rules.item_codes({**{a: read[a] for a in ("color", "pattern", "style", "material")},
                                        "category": asked})
                row["compatibility_oracle"] = float(np.mean([self.oracle.rules.outfit(new, np.arange(k, k + len(cats)))
                                                             for k in range(0, len(flat), len(cats))]))
            rows.append(row)
        return {"rows": rows, "users": users, "categories": cats, "pictures": made, "words": words}

    def _text_to_image(self) -> dict:
        c = self.config
        rng = np.random.default_rng([c.seed, 4])
        items = np.sort(rng.choice(len(self.ds.items), min(c.text_items, len(self.ds.items)), replace=False))
        text = self.examples.text[items]
        category = self.examples.category[items]
        pictures = []
        for start in range(0, len(items), c.batch_size):
            sl = slice(start, start + c.batch_size)
            pictures.append(to_uint8(self.dual.sample(Conditions(category=category[sl]), steps=c.steps, text=text[sl],
                                                      guidance={"words": c.words_guidance}, seed=c.seed + start)[0]))
        read = self.probe.predict(np.concatenate(pictures))
        given = self.ds.items.iloc[items]
        agree = {a: float(np.mean(np.asarray(read[a]).astype(str) == given[a].astype(str).to_numpy()))
                 for a in ("category", *ATTRIBUTES)}
        # Image to text: the same items' real pictures captioned; the written value against the true one.
        written = self._captioned(np.asarray(self.ds.images[items])[:, None], categories=category).words
        captions = {a: float(np.mean(written[a][:, 0] == given[a].astype(str).to_numpy())) for a in ATTRIBUTES}
        return {"items": int(len(items)), "agreement": agree, "captions_true": captions,
                "classifier_on_real": self.probe_report["accuracy"]}

    def _training(self) -> dict:
        out = {}
        for key, model in (("dual", self.dual), ("image_only", self.image_only)):
            if model is not None:
                history = model.meta.get("history", [])
                weights = Path(self.runs[key]) / "model" / "model.safetensors"
                out[key] = {"config": asdict(model.config), "checkpoint_mb": round(weights.stat().st_size / 1e6, 1),
                            "train_seconds": round(sum(h["seconds"] for h in history), 1),
                            "parameters": sum(p.numel() for p in model.trainable()),
                            "stages": [{k: h[k] for k in ("stage", "epoch", "image_loss", "text_loss", "seconds")}
                                       for h in history]}
        return out

    # ------------------------------------------------------------------ pictures

    def _pictures(self, made: dict[str, Made], q: dict, gor: dict) -> None:
        from modiste.viz import contact_sheet, save_png, stack

        sheets = []
        items = self.ds.items
        for i in range(min(6, len(q["users"]))):
            ctx = q["context"][i][q["context"][i] >= 0]
            tiles = [np.asarray(self.ds.images[r]) for r in ctx] + [np.asarray(self.ds.images[q["true"][i]])]
            labels = [f"outfit: {items['category'].iat[r]}" for r in ctx] + [
                f"the user's choice: {items['description'].iat[q['true'][i]]}"]
            shown = {name: short for name, short in SHORT.items() if name in made}
            for name in shown:
                m = made[name]
                for k in range(min(2, m.pictures.shape[1])):
                    tiles.append(m.pictures[i, k])
                    words = " ".join(str(m.words[a][i, k]) for a in ATTRIBUTES) if m.words else ""
                    labels.append(f"{name.split(' (')[0]}: {words}")
            user = self.ds.users.index[q["users"][i]]
            sheets.append(contact_sheet(tiles, labels, columns=len(tiles), label_lines=4,
                                        title=f"PFITB for {user}, outfit {q['outfit_ids'][i]}: the outfit, the user's "
                                              f"choice, then two items each from {', '.join(shown.values())}"))
        save_png(stack(sheets), self.out / "pfitb.png")
        sheets = []
        cats, codes = gor["categories"], [self.vocab.categories.index(c) for c in gor["categories"]]
        for u in range(min(4, len(gor["users"]))):
            tiles, labels = [], []
            for name, pictures in gor["pictures"].items():
                tiles.extend(pictures[u])
                labels.extend(f"{SHORT[name]}: {c}" for c in cats)
            sheets.append(contact_sheet(tiles, labels, columns=len(cats) * len(gor["pictures"]), label_lines=2,
                                        title=f"GOR for {self.ds.users.index[gor['users'][u]]}: "
                                              + ", then ".join(SHORT[n] for n in gor["pictures"])))
        save_png(stack(sheets), self.out / "gor.png")
        tiles, labels = [], []
        for u in range(min(4, len(gor["users"]))):
            for name, ids in gor["words"].items():
                tiles.extend(gor["pictures"][name][u])
                labels.extend(f"{SHORT[name]}: {caption}" for caption in self.vocab.caption(ids[u], codes))
        save_png(contact_sheet(tiles, labels, columns=len(cats) * len(gor["words"]), label_lines=4,
                               title="GOR with the words: the dual model's own, then the user's preferred words "
                                     "(one user a row)"),
                 self.out / "gor-captions.png")


# ---------------------------------------------------------------------- helpers

def _load_gan(run, ds: Dataset):
    import json

    from modiste.design.gan import CategoryGAN
    from modiste.design.train import MODEL, RUN

    spec_path = Path(run) / RUN
    if not spec_path.exists() or json.loads(spec_path.read_text()).get("task") != "gan":
        raise FileNotFoundError(f"{run} is not a GAN run: train one with `modiste train gan`")
    if json.loads(spec_path.read_text())["data"]["name"] != ds.name:
        raise ValueError(f"the GAN run {run} was trained on another dataset than '{ds.name}'")
    return CategoryGAN.load(Path(run) / MODEL)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_unit(np.asarray(a, np.float64)) * _unit(np.asarray(b, np.float64))).sum(-1)


def _inception_score(proba: np.ndarray) -> float:
    """exp(E_x KL(p(c|x) || p(c))) of class probabilities (N, C)."""
    p = np.clip(np.asarray(proba, np.float64), 1e-12, 1)
    marginal = p.mean(0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def _targets(rows: list[dict], gor: list[dict]) -> dict:
    """The issue's targets, as measured."""
    by = {r["model"]: r for r in rows}
    dual, out = by[DUAL], {}
    if IMAGE_ONLY in by:
        other = by[IMAGE_ONLY]
        for metric in ("image_personalization", "compatibility_model", "compatibility_oracle", "alignment"):
            if metric in dual and metric in other:
                out[f"dual_above_image_only_{metric}"] = bool(dual[metric] > other[metric])
    if GAN in by:
        out["dual_fid_below_gan"] = bool(dual["fid"] < by[GAN]["fid"])
    for key, name in (("dual", DUAL), ("preferred", PREFERRED), ("spread", SPREAD), ("ranked", RANKED)):
        if name not in by:
            continue
        if "utility" in by[name]:
            out[f"{key}_utility_above_users_choice"] = bool(by[name]["utility"] > by[CHOICE]["utility"])
        out[f"{key}_retrieval_hard_above_chance"] = bool(by[name]["retrieval_hard"] > 0.2)
    return out


def markdown(report: dict) -> str:
    m, c = report["machine"], report["config"]
    cols = [("fid", "FID"), ("category_accuracy", "category acc."), ("inception_score", "IS"),
            ("alignment", "text-image alignment"), ("image_personalization", "image pers."),
            ("text_personalization", "text pers."), ("compatibility_model", "compat. (outfit model)"),
            ("compatibility_oracle", "compat. (oracle)"), ("retrieval_hard", "retrieval hard"),
            ("retrieval_random", "retrieval random"), ("diversity", "diversity"), ("utility", "oracle utility")]
    cols = [(k, label) for k, label in cols if any(k in r for r in report["rows"])]
    fmt = (lambda v: "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
    lines = [f"# Generative PFITB and GOR on '{report['dataset']}'", "",
             f"{report['questions']} test hard questions x {c['samples']} samples, {c['steps']} sampling steps, "
             f"guidance {c['guidance']}. {m['cpus']} CPUs, {m['threads']} torch thread(s), load average "
             f"{m['load_start'][0]} at the start, {m['load_end'][0]} at the end; {m['seconds']:.0f} s in all.", "",
             "| row | " + " | ".join(label for _, label in cols) + " |", "|---|" + "---|" * len(cols)]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | " + " | ".join(fmt(r.get(k)) for k, _ in cols) + " |")
    lines += ["", f"FID compares between rows of as many pictures: the generated rows and the random real items "
                  f"have {c['samples']} per question, retrieval and the user's choice one (a smaller set reads higher)."]
    gcols = [k for k in ("category_accuracy", "image_personalization", "compatibility_model", "compatibility_oracle")
             if any(k in r for r in report["gor"])]
    lines += ["", f"GOR ({', '.join(c['gor_categories'])}, {c['gor_users']} users):", "",
              "| row | " + " | ".join(gcols) + " |", "|---|" + "---|" * len(gcols)]
    for r in report["gor"]:
        lines.append(f"| {r['model']} | " + " | ".join(fmt(r.get(k)) for k in gcols) + " |")
    t2i = report["text_to_image"]
    lines += ["", f"Text to image ({t2i['items']} held-out descriptions, guidance {c['words_guidance']} on the words): "
                  "the classifier reads the given value in "
                  + ", ".join(f"{a} {v:.3f}" for a, v in t2i["agreement"].items())
                  + "; on real pictures it reads " + ", ".join(f"{a} {v:.3f}" for a, v in t2i["classifier_on_real"].items()),
              "", "Image to text (the same items' real pictures captioned): the written value is the true one in "
                  + ", ".join(f"{a} {v:.3f}" for a, v in t2i["captions_true"].items()),
              "", "Targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in report["targets"].items()), ""]
    return "\n".join(lines)
