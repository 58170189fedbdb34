"""Personalized design on the tiny world: the GAN trains, saves and loads; preference maximisation
raises the score it optimises; FID is 0 for identical sets and grows with a shift; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data import Dataset
from modiste.design.gan import CategoryGAN
from modiste.design.metrics import FIDReference, diversity, encode, fid
from modiste.design.pm import PMConfig, maximise_preference, preference_scores, tailor
from modiste.design.train import train_gan
from modiste.rec.base import load_model
from modiste.rec.train import train_recommender
from modiste.vision.encoder import EncoderConfig, ImageEncoder

runner = CliRunner()
GAN_FAST = {"epochs": 1, "batch_size": 16, "max_images": 64, "sheet_columns": 2, "threads": 1}
GAN_SMALL = {"g_width": 16, "d_width": 16, "d_patch": 48, "z_dim": 16}


@pytest.fixture(scope="module")
def runs(tiny_world, tmp_path_factory):
    """A DVBPR run (two short epochs) and a GAN run (a few steps) on the tiny world."""
    root = tmp_path_factory.mktemp("design")
    train_recommender("dvbpr", tiny_world, root / "dvbpr", progress=False,
                      model_overrides={"factors": 16, "width": 8, "hidden": 32},
                      train_overrides={"threads": 1, "epochs": 1, "batch_size": 512, "eval_users": 50})
    train_gan(tiny_world, root / "gan", model_overrides=GAN_SMALL, train_overrides=GAN_FAST, progress=False)
    return root / "dvbpr", root / "gan"


def test_gan_trains_saves_and_loads(runs, tmp_path):
    _, gan_run = runs
    gan = CategoryGAN.load(gan_run / "model")
    assert len(gan.categories) == 10 and (gan_run / "samples-epoch-01.png").exists()
    history = json.loads((gan_run / "metrics.json").read_text())["history"]
    assert history[0]["images_seen"] == 64 and np.isfinite(history[0]["d_loss"])
    z = CategoryGAN.random_z(4, gan.z_dim, torch.Generator().manual_seed(3))
    first = gan.sample(4, "dress", z=z)
    assert first.shape == (4, 64, 64, 3) and first.dtype == np.uint8
    gan.save(tmp_path / "copy")
    again = CategoryGAN.load(tmp_path / "copy")
    np.testing.assert_array_equal(first, again.sample(4, "dress", z=z))
    np.testing.assert_array_equal(gan.sample(3, "bag", seed=5), again.sample(3, "bag", seed=5))
    assert not np.array_equal(first, gan.sample(4, "shoes", z=z))  # the category changes the picture
    with pytest.raises(KeyError, match="unknown category"):
        gan.sample(1, "hats")


def test_gan_run_resumes_where_it_stopped(tiny_world, tmp_path):
    run = tmp_path / "gan"
    train_gan(tiny_world, run, model_overrides=GAN_SMALL, train_overrides=GAN_FAST, progress=False)
    train_gan(tiny_world, run, model_overrides=GAN_SMALL, train_overrides={**GAN_FAST, "epochs": 2}, progress=False)
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["images_seen"] == 128
    assert (run / "samples-epoch-02.png").exists()


def test_preference_maximisation_raises_the_score(runs):
    rec_run, gan_run = runs
    gan, rec = CategoryGAN.load(gan_run / "model"), load_model(rec_run / "best")
    # eta=0: the pure preference term, which must rise from the random starts
    pure = maximise_preference(gan, rec, [3, 7], ["dress", "shoes"], n=3, config=PMConfig(steps=15, restarts=2, eta=0.0))
    assert (pure.scores > pure.start_scores).all()
    d = maximise_preference(gan, rec, [3, 7], ["dress", "shoes"], n=3, config=PMConfig(steps=15, restarts=2))
    assert d.images.shape == (2, 3, 64, 64, 3) and d.images.dtype == np.uint8
    # the scores are theta_u . Phi of the returned pictures themselves, and the objective subtracts realism
    np.testing.assert_allclose(d.scores[0], preference_scores(rec, [3] * 3, d.images[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.objective, d.scores - d.realism, rtol=1e-5, atol=1e-5)
    assert (np.diff(d.objective, axis=1) <= 1e-6).all()  # best first
    assert np.abs(d.z).max() <= 1.0  # z stays in the box
    result = tailor(gan, rec, 3, d.images[1, 0], "shoes", PMConfig(steps=10, eta=0.0), record=(0, 5), fit_steps=5,
                    fit_restarts=2)
    assert [s["step"] for s in result["steps"]] == [0, 5, 10]
    assert result["steps"][-1]["score"] > result["steps"][0]["score"]


def test_fid_is_zero_for_identical_sets_and_grows_with_a_shift(tiny_world):
    ds = Dataset(tiny_world)
    encoder = ImageEncoder(dim=32, width=8)
    encoder.fit(ds.images, EncoderConfig(epochs=1, dim=32, width=8, threads=1, max_images=256))
    a, b = np.asarray(ds.images[:200]), np.asarray(ds.images[200:400])
    assert fid(a, a, encoder) == pytest.approx(0.0, abs=1e-6)
    shifted = [fid(a, np.clip(a.astype(int) - s, 0, 255).astype(np.uint8), encoder) for s in (0, 20, 50, 100)]
    assert shifted[0] == pytest.approx(0.0, abs=1e-6)
    assert shifted[1] < shifted[2] < shifted[3]
    assert 0 < fid(a, b, encoder) < shifted[3]
    ref = FIDReference(encoder, a, ds.items["category"].to_numpy()[:200])
    same = ref.score(a, ds.items["category"].to_numpy()[:200])
    assert same["overall"] == pytest.approx(0.0, abs=1e-6) and all(v == pytest.approx(0.0, abs=1e-6) for v in same.values())
    feats = encode(encoder, a[:5])
    assert diversity(np.repeat(feats[:1], 4, 0)) == pytest.approx(0.0, abs=1e-9) and diversity(feats) > 0


def test_cli_train_gan_then_design(runs, tiny_world, tmp_path):
    rec_run, _ = runs
    gan_run = tmp_path / "gan"
    result = runner.invoke(app, ["train", "gan", "--data", str(tiny_world), "--out", str(gan_run), "--quiet",
                                 "--set", "g_width=16", "--set", "d_width=16", "--set", "d_patch=48", "--set", "z_dim=16",
                                 "--train-set", "max_images=32", "--train-set", "batch_size=16", "--train-set", "threads=1", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert (gan_run / "model" / "gan.json").exists()
    ds = Dataset(tiny_world)
    user = str(ds.users.index[4])
    picture = tmp_path / "designs.png"
    base = ["design", "--rec-run", str(rec_run), "--gan-run", str(gan_run), "--user", user]
    result = runner.invoke(app, [*base, "--category", "top", "-n", "3", "--steps", "5", "--restarts", "1",
                                 "--out", str(picture), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["designs"]) == 3 and data["user"] == user and picture.exists()
    assert data["designs"][0]["objective"] >= data["designs"][-1]["objective"]
    item = str(ds.items.index[ds.items["category"] == "top"][0])
    result = runner.invoke(app, [*base, "--category", "top", "--item", item, "--steps", "5", "--fit-steps", "5",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert [s["step"] for s in json.loads(result.output)["tailor"]["steps"]] == [0, 5]


@pytest.mark.parametrize("args, message", [
    (["--user", "nobody", "--category", "top"], "no user 'nobody'"),
    (["--user", "USER", "--category", "hats"], "unknown category 'hats'"),
    (["--user", "USER", "--category", "top", "--item", "i-none"], "no item 'i-none'"),
])
def test_design_bad_input_is_one_clear_error(runs, tiny_world, args, message):
    rec_run, gan_run = runs
    user = str(Dataset(tiny_world).users.index[0])
    args = [a.replace("USER", user) for a in args]
    result = runner.invoke(app, ["design", "--rec-run", str(rec_run), "--gan-run", str(gan_run), *args])
    assert result.exit_code == 2 and message in _text(result) and "Traceback" not in result.output


def test_design_needs_a_dvbpr_run_and_a_gan_run(runs, tmp_path):
    rec_run, gan_run = runs
    result = runner.invoke(app, ["design", "--rec-run", str(gan_run), "--gan-run", str(gan_run), "--user", "u",
                                 "--category", "top"])
    assert result.exit_code == 2 and "design needs a DVBPR run" in _text(result)
    result = runner.invoke(app, ["design", "--rec-run", str(rec_run), "--gan-run", str(tmp_path), "--user", "u",
                                 "--category", "top"])
    assert result.exit_code == 2 and "is not a GAN run" in _text(result)


def _text(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())
