"""A shopper's designs in the app (/me/designs and the page's Designs tab): new pictures whose stored
scores are the DVBPR run's own scores of the stored pictures, above random GAN samples for the same
shopper; listing, reading, deleting; another shopper can neither read, delete nor detect them; bad
input and a server without design runs say what is wrong.

A tiny DVBPR run and a tiny GAN run are trained once for the module on one torch thread (as in
tests/test_design.py); the endpoint tests run on SQLite and on the PostgreSQL of
$MODISTE_TEST_POSTGRES (skipped without it, as in tests/test_app.py). The browser test is skipped
without chromium, as in tests/test_web.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import expect
from typer.testing import CliRunner

from modiste.app import Settings, create_app
from modiste.app.auth import issue_shopper_token
from modiste.cli import app as cli_app
from modiste.design.api import user_row
from modiste.design.pm import preference_scores, realism
from modiste.design.train import train_gan
from modiste.rec.train import train_recommender
from test_app import BACKENDS, bearer, empty_database, ok
from test_design import GAN_FAST, GAN_SMALL
from test_web import DESKTOP, PHONE, Served, browser, no_sideways_overflow, pictures_loaded, sign_in, visits  # noqa: F401

MADE_UP = "0123456789abcdef"


def train_design_runs(world: Path, root: Path) -> tuple[Path, Path]:
    """(a DVBPR run, a GAN run) on `world` in `root`: a few seconds each on the tiny world, one thread.
    The DVBPR's weak prior on theta_u (1e-3, not 1) lets the shoppers' tastes grow large enough in 3
    epochs to outweigh the realism term, so that the search visibly follows them."""
    train_recommender("dvbpr", world, root / "dvbpr", progress=False,
                      model_overrides={"factors": 16, "width": 8, "hidden": 32, "reg_user": 1e-3},
                      train_overrides={"threads": 1, "epochs": 3, "lr": 3e-3, "batch_size": 512, "eval_users": 50})
    train_gan(world, root / "gan", model_overrides=GAN_SMALL, train_overrides=GAN_FAST, progress=False)
    return root / "dvbpr", root / "gan"


@pytest.fixture(scope="module")
def design_runs(tiny_world, tmp_path_factory) -> tuple[Path, Path]:
    return train_design_runs(tiny_world, tmp_path_factory.mktemp("design-runs"))


@pytest.fixture(scope="module", params=BACKENDS)
def client(request, tiny_world, design_runs, tmp_path_factory):
    with empty_database(request.param, tmp_path_factory.mktemp("designs-db")) as db:
        app = create_app(Settings(data=tiny_world, db=db, design_rec_run=design_runs[0], gan_run=design_runs[1]))
        with TestClient(app) as client:
            yield client


def shopper(client: TestClient, user_id: str) -> dict[str, str]:
    services = client.app.state.services
    return bearer(issue_shopper_token(services.db, services.ds, user_id))


def picture(client: TestClient, design: dict, me: dict[str, str]) -> np.ndarray:
    answer = client.get(design["image_url"], headers=me)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))


def test_designs_follow_the_shoppers_taste_and_are_kept_until_deleted(client):
    me = shopper(client, "u00003")
    first = ok(client.post("/me/designs", json={"category": "dress", "n": 4}, headers=me), 201)
    assert len(first) == 4 and {d["category"] for d in first} == {"dress"}
    images = np.stack([picture(client, d, me) for d in first])
    assert images.shape == (4, 64, 64, 3)

    # The stored scores are the models' own scores of the stored pictures, best first ...
    runs = client.app.state.services.designs.runs
    user = user_row(runs, "u00003")
    scores = np.array([d["score"] for d in first])
    np.testing.assert_allclose(scores, preference_scores(runs.rec, np.full(4, user), images), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([d["realism"] for d in first],
                               realism(runs.gan, images, np.full(4, runs.gan.label("dress"))), rtol=1e-5, atol=1e-5)
    objective = scores - np.array([d["realism"] for d in first])
    assert (np.diff(objective) <= 1e-6).all()
    # ... and the search works: the shopper likes them far more than random pictures of the GAN (by 3.5
    # to 4.7 standard deviations of the random pictures' scores over 20 searches of three shoppers).
    random_scores = preference_scores(runs.rec, np.full(256, user), runs.gan.sample(256, "dress", seed=11))
    assert scores.mean() > random_scores.mean() + 2 * random_scores.std()

    # Asking again draws new ones; the list holds the latest request first, each one's best first.
    second = ok(client.post("/me/designs", json={"category": "dress"}, headers=me), 201)
    assert len(second) == 4  # n defaults to 4
    assert not np.array_equal(np.stack([picture(client, d, me) for d in second]), images)
    listed = ok(client.get("/me/designs", headers=me))
    assert [d["design_id"] for d in listed] == [d["design_id"] for d in second + first]
    assert ok(client.get(f"/me/designs/{first[1]['design_id']}", headers=me)) == first[1]

    # Deleted: gone from everything, and a second delete finds nothing.
    gone = first[0]["design_id"]
    ok(client.delete(f"/me/designs/{gone}", headers=me), 204)
    assert gone not in [d["design_id"] for d in ok(client.get("/me/designs", headers=me))]
    for answer in (client.get(f"/me/designs/{gone}", headers=me), client.get(f"/me/designs/{gone}/image.png", headers=me),
                   client.delete(f"/me/designs/{gone}", headers=me)):
        assert answer.status_code == 404 and gone in answer.json()["detail"]


def test_a_shopper_cannot_read_delete_or_detect_anothers_designs(client):
    a, b = shopper(client, "u00004"), shopper(client, "u00005")
    b_before = ok(client.get("/me/designs", headers=b))
    theirs = ok(client.post("/me/designs", json={"category": "shoes", "n": 1}, headers=a), 201)[0]
    a_seen = ok(client.get("/me/designs", headers=a)), picture(client, theirs, a)

    def as_b(design_id: str) -> list[tuple[int, str]]:
        answers = [client.get(f"/me/designs/{design_id}", headers=b),
                   client.get(f"/me/designs/{design_id}/image.png", headers=b),
                   client.delete(f"/me/designs/{design_id}", headers=b)]
        return [(answer.status_code, answer.text.replace(design_id, "<id>")) for answer in answers]

    assert as_b(theirs["design_id"]) == as_b(MADE_UP)
    assert {status for status, _ in as_b(theirs["design_id"])} == {404}
    assert ok(client.get("/me/designs", headers=b)) == b_before == []
    assert ok(client.get("/me/designs", headers=a)) == a_seen[0]
    assert np.array_equal(picture(client, theirs, a), a_seen[1])  # B's delete did not reach it


def test_bad_requests_name_the_field(client):
    me = shopper(client, "u00006")

    def refused(body: dict, *words: str) -> None:
        answer = client.post("/me/designs", json=body, headers=me)
        assert answer.status_code == 422, answer.text
        said = json.dumps(answer.json())
        assert all(w in said for w in words), said

    refused({"category": "hats"}, '"category"', "shoes")
    refused({"category": "top", "n": 0}, '"n"', "greater than or equal to 1")
    refused({"category": "top", "n": 9}, '"n"', "less than or equal to 8")
    refused({"category": "top", "colour": "red"}, "colour", "Extra inputs")
    assert client.get("/me/designs").status_code == 401
    assert ok(client.get("/me/designs", headers=me)) == []


def test_without_design_runs_the_designs_say_how_to_turn_them_on(tiny_world, design_runs, world_copy, tmp_path):
    app = create_app(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}"))
    client = TestClient(app)
    me = shopper(client, "u00001")
    for answer in (client.post("/me/designs", json={"category": "top"}, headers=me),
                   client.get("/me/designs", headers=me), client.get(f"/me/designs/{MADE_UP}/image.png", headers=me)):
        assert answer.status_code == 503
        assert "--design-rec-run" in answer.json()["detail"] and "--gan-run" in answer.json()["detail"]
    # Half the runs, runs of another dataset, or runs of the wrong kind stop the server at start.
    dvbpr, gan = design_runs
    with pytest.raises(ValueError, match="designs need both runs"):
        Settings(data=tiny_world, gan_run=gan)
    manifest = world_copy / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "name": "another-world"}))
    with pytest.raises(ValueError, match="not on 'another-world'"):
        create_app(Settings(data=world_copy, db=f"sqlite:///{tmp_path / 'b.sqlite'}", design_rec_run=dvbpr, gan_run=gan))
    with pytest.raises(ValueError, match="design needs a DVBPR run"):
        create_app(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'c.sqlite'}", design_rec_run=gan, gan_run=gan))
    said = CliRunner().invoke(cli_app, ["serve", "--data", str(tiny_world), "--gan-run", str(gan),
                                        "--issue-token", "u00001"])
    assert said.exit_code == 2 and "--design-rec-run" in said.output


def test_the_designs_tab_in_a_browser(tiny_world, design_runs, visits, tmp_path):  # noqa: F811
    served = Served(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}",
                             design_rec_run=design_runs[0], gan_run=design_runs[1]))
    off = Served(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'off.sqlite'}"))
    try:
        visit = visits(served.url, DESKTOP)
        page = visit.open("/#designs")
        sign_in(page, served.token("u00007"))
        expect(page.locator("#designs .notice")).to_contain_text("No designs yet")
        page.locator("#design-category").select_option("shoes")
        page.get_by_role("button", name="Design for me").click()
        pictures_loaded(page, "#designs", at_least=4)
        expect(page.locator("#designs .card")).to_have_count(4)
        expect(page.locator("#designs .card .category").first).to_have_text("shoes")
        first = page.locator("#designs .card").first
        expect(first.locator(".scores")).to_contain_text("Your taste")
        first.get_by_role("button", name="Delete").click()
        expect(page.locator("#designs .card")).to_have_count(3)
        page.set_viewport_size(PHONE)
        no_sideways_overflow(page)
        visit.check_clean()

        closed = visits(off.url, DESKTOP)
        page = closed.open("/#designs")
        sign_in(page, off.token("u00007"))
        expect(page.locator("#designs .notice")).to_contain_text("Designs are off")
        expect(page.locator("#designs .notice")).to_contain_text("--gan-run")
        expect(page.get_by_role("button", name="Design for me")).to_be_hidden()
        closed.check_clean(allowed_errors=("Failed to load resource: the server responded with a status of 503",))
    finally:
        served.stop()
        off.stop()
