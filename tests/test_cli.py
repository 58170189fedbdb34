"""The command line, as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from typer.testing import CliRunner

from modiste.cli import app

runner = CliRunner()


def test_world_then_info_then_show(tmp_path):
    out = tmp_path / "w"
    result = runner.invoke(app, ["world", "--preset", "tiny", "--seed", "3", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").exists()

    again = runner.invoke(app, ["world", "--preset", "tiny", "--out", str(out), "--quiet"])
    assert again.exit_code == 2 and "--force" in again.output  # never overwrites by surprise

    info = runner.invoke(app, ["info", str(out), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.output)
    assert summary["counts"]["items"] == 1000 and summary["name"] == "world-tiny-seed3"
    assert sum(summary["categories"].values()) == 1000
    assert 0 < summary["cold_test_share"] < 1 and summary["oracle"]["ranking"]["auc"] > 0.85

    text = runner.invoke(app, ["info", str(out)])
    assert text.exit_code == 0 and "oracle" in text.output and "cold items" in text.output

    sheet = tmp_path / "sheet.png"
    assert runner.invoke(app, ["show", str(out), "--out", str(sheet), "-n", "16"]).exit_code == 0
    picture = np.asarray(Image.open(sheet))
    assert picture.shape[0] > 200 and (picture < 200).any()

    persons = tmp_path / "persons.png"
    assert runner.invoke(app, ["show", str(out), "--persons", "--out", str(persons), "-n", "6"]).exit_code == 0
    assert Image.open(persons).size[0] > 300


def test_bad_dataset_gives_one_clear_line_not_a_traceback(world_copy):
    table = pq.read_table(world_copy / "users.parquet").drop(["user_id"])
    pq.write_table(table, world_copy / "users.parquet")
    for command in (["validate", str(world_copy)], ["info", str(world_copy)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2
        assert "users.parquet, field 'user_id': required column is missing" in result.output.replace("\n", " ")
        assert "Traceback" not in result.output


def test_validate_a_good_dataset(tiny_world):
    result = runner.invoke(app, ["validate", str(tiny_world)])
    assert result.exit_code == 0 and "ok" in result.output


def test_unknown_preset(tmp_path):
    result = runner.invoke(app, ["world", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown preset" in result.output


def test_recommend_for_a_user_or_for_a_new_shoppers_items(app_runs, tiny_world):
    from modiste.data import Dataset

    run = str(app_runs[0])
    user = runner.invoke(app, ["recommend", "--run", run, "--user", "u00011", "-k", "3", "--json"])
    assert user.exit_code == 0 and len(json.loads(user.stdout)) == 3
    items = ",".join(Dataset(tiny_world).items.index[:2])
    refused = runner.invoke(app, ["recommend", "--run", run, "--items", items])
    assert refused.exit_code == 2 and "cannot score a new shopper" in refused.output
    both = runner.invoke(app, ["recommend", "--run", run, "--user", "u00011", "--items", items])
    assert both.exit_code == 2 and "either --user or --items" in both.output
