"""The app (modiste.app): every endpoint on the tiny world, feedback that reshapes the next
recommendations, shopper isolation over every route, bad input, migrations, and a real
`modiste serve` that loses nothing when killed with SIGKILL.

One tiny BPR run and one outfit run of a single epoch are trained once for the module, on one
torch thread; each test signs in as its own dataset users, so tests share one app and database.
The app's tests, its migrations and the SIGKILL test run on SQLite and on a real PostgreSQL: the one
named by $MODISTE_TEST_POSTGRES (`.ci/run` installs one from Debian's packages, starts it on loopback
and sets it); without it those cases are skipped, saying so.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import hypothesis
import numpy as np
import pytest
import schemathesis
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, inspect, make_url, text
from typer.testing import CliRunner

from modiste.app import Settings, create_app
from modiste.app.auth import hash_token, issue_shopper_token, reset_admin_token
from modiste.app.db import Base, Database
from modiste.app.index import IndexSpec, ItemIndex
from modiste.app.recommend import FactorRecommender, factor_form
from modiste.cli import app as cli_app
from modiste.data import Dataset
from modiste.design.pm import PMConfig
from modiste.rec.base import load_model
from modiste.rec.evaluate import recommend_for
from modiste.rec.train import BEST


POSTGRES = os.environ.get("MODISTE_TEST_POSTGRES")  # a URL whose user may create databases
BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def empty_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file in `folder`, or a PostgreSQL database made for
    this use and dropped after it."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'app.sqlite'}"
        return
    if not POSTGRES:
        pytest.skip("no PostgreSQL to test against: set MODISTE_TEST_POSTGRES to a URL (.ci/run does)")
    name = f"modiste_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def runs(app_runs) -> tuple[Path, Path]:
    return app_runs


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tiny_world, runs, tmp_path_factory):
    """(TestClient, admin headers, Dataset) over one app and database (of each backend) for the module."""
    with empty_database(request.param, tmp_path_factory.mktemp("app-db")) as db:
        app = create_app(Settings(data=tiny_world, db=db, rec_run=runs[0], outfit_run=runs[1]))
        with TestClient(app) as client:
            yield client, bearer(reset_admin_token(app.state.services.db)), Dataset(tiny_world)


@pytest.fixture
def client(server) -> TestClient:
    return server[0]


@pytest.fixture
def ds(server) -> Dataset:
    return server[2]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(server, user_id: str) -> dict[str, str]:
    client, admin, _ = server
    answer = client.post("/admin/shoppers", json={"user_id": user_id}, headers=admin)
    assert answer.status_code == 201, answer.text
    return bearer(answer.json()["token"])


def ok(answer, status: int = 200):
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def ids(items: list[dict]) -> list[str]:
    return [i["item_id"] for i in items]


def recommend(client, me, **query) -> list[str]:
    return ids(ok(client.get("/me/recommendations", params=query, headers=me))["items"])


# ---------------------------------------------------------------------------- the catalogue

def test_openapi_documents_every_route_with_typed_models(client):
    schema = ok(client.get("/openapi.json"))
    assert set(schema["paths"]) == {
        "/health", "/vocabulary", "/items", "/items/{item_id}", "/items/{item_id}/image.png", "/me", "/me/feedback",
        "/me/feedback/{feedback_id}", "/me/recommendations", "/me/outfits/complete", "/me/outfits/compose",
        "/me/designs", "/me/designs/{design_id}", "/me/designs/{design_id}/image.png",
        "/admin/shoppers", "/admin/items/{item_id}", "/admin/items/{item_id}/visibility", "/admin/hidden"}
    models = schema["components"]["schemas"]
    assert {"Item", "ItemPage", "Profile", "Recommendations", "Outfit", "FeedbackIn", "CompleteIn"} <= set(models)
    # The dataset's categories are an enum, so clients (and fuzzers) know the values.
    assert "top" in json.dumps(models["CompleteIn"]["properties"]["category"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_browse_by_category_and_attributes_pages_through_every_match(client, ds):
    items = ds.items
    expected = items[(items["category"] == "top") & (items["color"] == "blue")].index.tolist()
    first = ok(client.get("/items", params={"category": "top", "color": "blue", "limit": 3}))
    rest = ok(client.get("/items", params={"category": "top", "color": "blue", "offset": 3, "limit": 100}))
    assert first["total"] == rest["total"] == len(expected) > 3
    assert ids(first["items"]) + ids(rest["items"]) == expected


def test_search_by_words_and_the_vocabulary(client, ds):
    found = ok(client.get("/items", params={"q": "Silk BLUE", "limit": 100}))
    assert found["total"] > 0
    for item in found["items"]:
        text_ = (item["description"] + ds.items.at[item["item_id"], "caption"]).lower()
        assert "silk" in text_ and "blue" in text_
    vocabulary = ok(client.get("/vocabulary"))
    assert vocabulary["categories"] == sorted(ds.items["category"].unique())
    assert set(vocabulary["attributes"]) == set(ds.attributes)


def test_item_page_and_its_picture(client, ds):
    page = ok(client.get("/items/i00042"))
    row = ds.item_row("i00042")
    assert page["description"] == ds.items["description"].iat[row]
    assert page["caption"] == json.loads(ds.items["caption"].iat[row])
    assert page["attributes"]["color"] == ds.items["color"].iat[row] and page["hidden"] is False
    picture = client.get(page["image_url"])
    assert picture.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(picture.content))), ds.images[row])
    missing = client.get("/items/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert client.get("/items/nope/image.png").status_code == 404


# ---------------------------------------------------------------------------- a shopper

def test_profile_holds_history_body_and_feedback(server, client, ds):
    me = sign_in(server, "u00010")
    ok(client.post("/me/feedback", json={"item_id": "i00005", "kind": "buy"}, headers=me), 201)
    profile = ok(client.get("/me", headers=me))
    assert profile["user_id"] == "u00010"
    assert ids(profile["history"]) == ds.history("u00010")
    assert profile["body"] == {k: v for k, v in ds.users.loc["u00010"].items() if k != "user_id" and v}
    assert [(f["item_id"], f["kind"]) for f in profile["feedback"]] == [("i00005", "buy")]


def test_recommendations_are_the_models_top_k(server, client, runs):
    me = sign_in(server, "u00011")
    answer = ok(client.get("/me/recommendations", params={"k": 10}, headers=me))
    assert answer["refitted"] is False
    expected = recommend_for(runs[0], "u00011", 10)
    assert ids(answer["items"]) == ids(expected)
    assert np.allclose([i["score"] for i in answer["items"]], [e["score"] for e in expected], atol=1e-4)
    shoes = recommend(client, me, k=5, category="shoes")
    assert len(shoes) == 5 and all(client.get(f"/items/{i}").json()["category"] == "shoes" for i in shoes)


def test_feedback_reshapes_the_next_recommendations(server, client):
    me = sign_in(server, "u00012")
    ds, rec = server[2], client.app.state.services.recommender
    unit = rec.items[:, :-1] / np.linalg.norm(rec.items[:, :-1], axis=1, keepdims=True)

    def nearest(item_id: str, among: list[str]) -> list[str]:
        """The items of `among` closest to `item_id` in the model's item space."""
        order = ds.items.index[np.argsort(-(unit @ unit[ds.item_row(item_id)]))[1:60]]
        return [i for i in order if i in among][:8]

    def mean_rank(items: list[str], of: list[str]) -> float:
        return float(np.mean([items.index(i) if i in items else len(items) for i in of]))

    before = recommend(client, me, k=100)
    # Like an item far down the list: the items near it rise.
    liked = before[80]
    near = nearest(liked, before)
    ok(client.post("/me/feedback", json={"item_id": liked, "kind": "like"}, headers=me), 201)
    answer = ok(client.get("/me/recommendations", params={"k": 100}, headers=me))
    after = ids(answer["items"])
    assert answer["refitted"] is True and liked not in after  # given feedback on: not offered again
    assert mean_rank(after, near) < mean_rank(before, near) - 10
    # Dislike the top item: it vanishes, and the items near it sink.
    top = after[0]
    near = nearest(top, after)
    disliked = ok(client.post("/me/feedback", json={"item_id": top, "kind": "dislike"}, headers=me), 201)
    then = recommend(client, me, k=100)
    assert top not in then and mean_rank(then, near) > mean_rank(after, near) + 10
    # Taking both back gives the model's own list again.
    for event in ok(client.get("/me/feedback", headers=me)):
        ok(client.delete(f"/me/feedback/{event['feedback_id']}", headers=me), 204)
    assert recommend(client, me, k=100) == before
    assert client.delete(f"/me/feedback/{disliked['feedback_id']}", headers=me).status_code == 404


def test_refit_keeps_the_trained_vector_without_feedback_and_is_deterministic(runs, tiny_world):
    model = load_model(runs[0] / BEST)
    users, items = factor_form(model)
    assert np.allclose(users[:5] @ items.T, model.score(np.arange(5)), atol=1e-5)
    rec = FactorRecommender(runs[0], Dataset(tiny_world))
    assert np.array_equal(rec.vector(3, {}), users[3])
    opinions = {7: "like", 9: "dislike", 11: "buy"}
    first, again = rec.vector(3, opinions), rec.vector(3, opinions)
    assert np.array_equal(first, again) and first[-1] == 1.0 and not np.allclose(first, users[3])


@pytest.mark.parametrize("size", [200, 12])  # 12: most requests fall back to the full search
def test_a_shortlist_gives_exactly_the_full_searchs_top_k(runs, tiny_world, monkeypatch, size):
    monkeypatch.setattr("modiste.app.recommend.SHORTLIST", size)
    ds = Dataset(tiny_world)
    rec = FactorRecommender(runs[0], ds)
    rng = np.random.default_rng(0)
    categories = ds.items["category"].to_numpy(dtype=str)
    for user in ds.users.index[:20]:
        vector = rec.users[rec.user_row(user)]
        liked = rng.choice(rec.n_items, 5, replace=False).tolist()
        shortlist = rec.shortlist(user, vector, left_out=liked)
        for k, share_hidden, category in [(10, 0.0, None), (10, 0.3, None), (40, 0.1, None), (5, 0.0, "shoes"),
                                          (10, 0.5, "top")]:
            allowed = rng.random(rec.n_items) >= share_hidden
            allowed[liked] = False
            if category is not None:
                allowed &= categories == category
            quick, full = rec.recommend(user, vector, k, allowed, shortlist), rec.recommend(user, vector, k, allowed)
            assert np.array_equal(quick[0], full[0]) and np.allclose(quick[1], full[1])


def test_outfit_completion_and_composition(server, client, ds):
    me = sign_in(server, "u00013")
    outfit = ds.outfits[ds.outfits["split"] == "test"].iloc[0]
    given, category = list(outfit["item_ids"][:2]), str(outfit["categories"][2])
    found = ok(client.post("/me/outfits/complete", json={"item_ids": given, "category": category, "k": 4},
                           headers=me))
    assert len(found) == 4 and {i["category"] for i in found} == {category} and not set(ids(found)) & set(given)
    # A disliked item is never offered.
    ok(client.post("/me/feedback", json={"item_id": found[0]["item_id"], "kind": "dislike"}, headers=me), 201)
    again = ok(client.post("/me/outfits/complete", json={"item_ids": given, "category": category, "k": 4},
                           headers=me))
    assert found[0]["item_id"] not in ids(again) and ids(again)[:3] == ids(found)[1:]
    composed = ok(client.post("/me/outfits/compose", json={"categories": ["top", "trousers", "shoes", "bag"]},
                              headers=me))
    assert [i["category"] for i in composed["items"]] == ["top", "trousers", "shoes", "bag"]
    assert not set(ids(composed["items"])) & set(ds.interactions.query("user_id == 'u00013'")["item_id"])


def test_admin_hides_an_item_from_everything_a_shopper_sees(server, client, ds):
    _, admin, _ = server
    me = sign_in(server, "u00014")
    top = recommend(client, me, k=1)[0]
    category = ds.items.at[top, "category"]
    assert ok(client.put(f"/admin/items/{top}/visibility", json={"hidden": True}, headers=admin))["hidden"] is True
    try:
        assert client.get(f"/items/{top}").status_code == 404
        assert client.get(f"/items/{top}/image.png").status_code == 404
        assert top not in ids(ok(client.get("/items", params={"category": category, "limit": 100}))["items"])
        assert top not in recommend(client, me, k=100)
        assert ids(ok(client.get("/admin/hidden", headers=admin))) == [top]
        assert ok(client.get(f"/admin/items/{top}", headers=admin))["hidden"] is True
        refused = client.post("/me/feedback", json={"item_id": top, "kind": "like"}, headers=me)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "item_id"]
    finally:
        ok(client.put(f"/admin/items/{top}/visibility", json={"hidden": False}, headers=admin))
    assert recommend(client, me, k=1) == [top]


# ---------------------------------------------------------------------------- accounts and isolation

def test_tokens_roles_and_reissue(server, client):
    _, admin, _ = server
    assert client.get("/me").status_code == 401
    assert client.get("/me", headers=bearer("made-up")).status_code == 401
    assert "shopper" in client.get("/me", headers=admin).json()["detail"]
    old = sign_in(server, "u00015")
    assert client.post("/admin/shoppers", json={"user_id": "u00016"}, headers=old).status_code == 403
    new = sign_in(server, "u00015")
    assert client.get("/me", headers=old).status_code == 401 and ok(client.get("/me", headers=new))
    bad = client.post("/admin/shoppers", json={"user_id": "nobody"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "user_id"]


def test_a_token_replaced_elsewhere_stops_working_when_its_cache_entry_expires(tiny_world, tmp_path):
    app = create_app(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}", token_cache_seconds=0.3))
    client, services = TestClient(app), app.state.services
    old = bearer(issue_shopper_token(services.db, services.ds, "u00018"))
    assert ok(client.get("/me", headers=old))["user_id"] == "u00018"  # now remembered
    new = bearer(issue_shopper_token(services.db, services.ds, "u00018"))  # as `modiste serve --issue-token` would
    time.sleep(0.4)
    assert client.get("/me", headers=old).status_code == 401
    assert ok(client.get("/me", headers=new))["user_id"] == "u00018"


def test_a_token_read_while_it_is_replaced_is_not_remembered(tiny_world, tmp_path, monkeypatch):
    from modiste.app import auth
    app = create_app(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}"))
    services = app.state.services
    old = hash_token(issue_shopper_token(services.db, services.ds, "u00021"))
    caller = auth.Caller

    def found_then_replaced(*fields):  # runs after the read found the old token, before it is remembered
        issue_shopper_token(services.db, services.ds, "u00021")  # as the admin route does, in another thread
        services.tokens.forget_all()
        return caller(*fields)

    monkeypatch.setattr(auth, "Caller", found_then_replaced)
    assert services.tokens.load(old) is not None  # this request read it before the replacement ...
    assert services.tokens.cached(old) is None  # ... but the next one reads again, and is refused
    monkeypatch.undo()
    assert services.tokens.load(old) is None


def test_a_shopper_state_read_while_their_feedback_changes_is_not_kept(tiny_world, runs, tmp_path, monkeypatch):
    from modiste.app import shoppers
    app = create_app(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}", rec_run=runs[0]))
    services = app.state.services
    me = services.tokens.load(hash_token(issue_shopper_token(services.db, services.ds, "u00019")))
    item = services.catalogue.ids[0]
    read = shoppers.feedback_of

    def read_then_a_like_lands(db, account):
        events = read(db, account)  # the state being loaded sees no like ...
        shoppers.add_feedback(db, account, item, "like")  # ... which lands now, as another request's would
        services.shoppers.forget(account)
        return events

    monkeypatch.setattr(shoppers, "feedback_of", read_then_a_like_lands)
    assert services.shoppers.load(me).opinions == {}
    monkeypatch.setattr(shoppers, "feedback_of", read)
    assert services.shoppers.cached(me) is None  # the stale state was not kept
    assert services.shoppers.get(me).opinions == {0: "like"}
    assert services.shoppers.cached(me).opinions == {0: "like"}


def test_only_token_hashes_are_stored(server, client):
    token = sign_in(server, "u00017")["Authorization"].split()[1]
    db = client.app.state.services.db
    with db.engine.connect() as connection:
        dump = json.dumps([list(map(str, row)) for table in ("accounts", "feedback", "user_vectors", "hidden_items")
                           for row in connection.execute(text(f"SELECT * FROM {table}"))])
    assert token not in dump and hash_token(token) in dump


# One request per route of the schema; {feedback_id} and the admin's {user_id} are filled with the
# identifiers under test. A new route makes the isolation test fail until it gets a request here.
ROUTES = {
    ("get", "/health"): lambda x: ("/health", None),
    ("get", "/vocabulary"): lambda x: ("/vocabulary", None),
    ("get", "/items"): lambda x: ("/items?limit=100", None),
    ("get", "/items/{item_id}"): lambda x: (f"/items/{x['item']}", None),
    ("get", "/items/{item_id}/image.png"): lambda x: (f"/items/{x['item']}/image.png", None),
    ("get", "/me"): lambda x: ("/me", None),
    ("get", "/me/feedback"): lambda x: ("/me/feedback", None),
    ("post", "/me/feedback"): lambda x: ("/me/feedback", {"item_id": x["feedback_item"], "kind": "like"}),
    ("delete", "/me/feedback/{feedback_id}"): lambda x: (f"/me/feedback/{x['feedback']}", None),
    ("get", "/me/recommendations"): lambda x: ("/me/recommendations?k=50", None),
    ("post", "/me/outfits/complete"): lambda x: ("/me/outfits/complete",
                                                {"item_ids": [x["item"]], "category": "shoes", "k": 10}),
    ("post", "/me/outfits/compose"): lambda x: ("/me/outfits/compose", {"categories": ["top", "trousers", "shoes"]}),
    ("get", "/me/designs"): lambda x: ("/me/designs", None),
    ("post", "/me/designs"): lambda x: ("/me/designs", {"category": "shoes", "n": 1}),
    ("get", "/me/designs/{design_id}"): lambda x: (f"/me/designs/{x['design']}", None),
    ("get", "/me/designs/{design_id}/image.png"): lambda x: (f"/me/designs/{x['design']}/image.png", None),
    ("delete", "/me/designs/{design_id}"): lambda x: (f"/me/designs/{x['design']}", None),
    ("post", "/admin/shoppers"): lambda x: ("/admin/shoppers", {"user_id": x["user"]}),
    ("get", "/admin/items/{item_id}"): lambda x: (f"/admin/items/{x['item']}", None),
    ("put", "/admin/items/{item_id}/visibility"): lambda x: (f"/admin/items/{x['item']}/visibility", {"hidden": True}),
    ("get", "/admin/hidden"): lambda x: ("/admin/hidden", None),
}


VOLATILE = re.compile(r'"(feedback_id|created_at)":"[^"]*"')


def sweep(client, headers, identifiers, methods=("get", "post", "put", "delete")) -> dict:
    """Every route once, as the shopper of `headers`, with `identifiers` in the URLs and bodies; after
    each request the shopper takes back any feedback it gave, so each one starts from the same state."""
    schema = client.get("/openapi.json").json()
    routes = {(m, p) for p, ops in schema["paths"].items() for m in ops}
    assert routes == set(ROUTES), f"give these routes a request in ROUTES: {routes ^ set(ROUTES)}"
    answers = {}
    for (method, path), request in sorted(ROUTES.items()):
        if method in methods:
            url, body = request(identifiers)
            answer = client.request(method, url, json=body, headers=headers)
            off = answer.status_code == 503 and path.startswith("/me/designs")  # this server runs without them
            assert answer.status_code < 500 or off, (method, url, answer.text)
            for event in ok(client.get("/me/feedback", headers=headers)):
                ok(client.delete(f"/me/feedback/{event['feedback_id']}", headers=headers), 204)
            text_ = VOLATILE.sub(r'"\1":"<new>"', answer.text)  # the shopper's own new event
            for value in identifiers.values():  # the identifiers themselves may be echoed back
                text_ = text_.replace(value, "<id>")
            answers[method, path] = (answer.status_code, text_ if "image" not in path else answer.content)
    return answers


def test_a_shopper_cannot_read_change_or_detect_another(server, client):
    a_user, b_user = "u00020", "u00021"
    b = sign_in(server, b_user)
    shared_item = "i00042"
    missing = {"item": shared_item, "feedback_item": shared_item, "feedback": "0123456789abcdef",
               "design": "0123456789abcdef", "user": "u-no-such-user"}
    # B looks at everything before A has an account ...
    b_before = sweep(client, b, missing, methods=("get",))
    a = sign_in(server, a_user)
    a_item = ok(client.get("/me/recommendations", params={"k": 1}, headers=a))["items"][0]["item_id"]
    a_events = [ok(client.post("/me/feedback", json={"item_id": item, "kind": kind}, headers=a), 201)
                for item, kind in ((a_item, "like"), ("i00007", "dislike"), ("i00008", "buy"))]
    a_state = lambda: (ok(client.get("/me", headers=a)), ok(client.get("/me/recommendations", headers=a)))  # noqa: E731
    a_seen = a_state()
    # ... and after A acted: B sees exactly the same.
    assert sweep(client, b, missing, methods=("get",)) == b_before
    # B with A's identifiers (A's feedback id, A's user id) is answered exactly as with made-up ones.
    theirs = {**missing, "feedback": a_events[0]["feedback_id"], "user": a_user}
    with_theirs, with_missing = sweep(client, b, theirs), sweep(client, b, missing)
    assert with_theirs == with_missing
    assert with_theirs["delete", "/me/feedback/{feedback_id}"][0] == 404
    assert {status for (m, p), (status, _) in with_theirs.items() if p.startswith("/admin")} == {403}
    # Nothing B did reached A, and nothing A owns showed up in what B got.
    assert a_state() == a_seen
    b_text = json.dumps({str(k): str(v) for k, v in with_theirs.items()})
    assert a_user not in b_text and all(e["feedback_id"] not in b_text for e in a_events)


# ---------------------------------------------------------------------------- bad input

def test_every_bad_input_is_a_4xx_that_names_what_was_wrong(server, client):
    me = sign_in(server, "u00022")

    def refused(answer, status, *words):
        assert answer.status_code == status, answer.text
        said = json.dumps(answer.json())
        assert all(w in said for w in words), said

    refused(client.get("/me/recommendations", params={"k": 0}, headers=me), 422, "k", "greater than or equal")
    refused(client.get("/me/recommendations", params={"k": 101}, headers=me), 422, "k", "less than or equal")
    refused(client.get("/me/recommendations", params={"k": "ten"}, headers=me), 422, "k", "integer")
    refused(client.get("/me/recommendations", params={"category": "hats"}, headers=me), 422, "category", "shoes")
    refused(client.get("/items", params={"colour": "red"}), 422, "colour", "Extra inputs")
    refused(client.get("/items", params={"color": "plaid"}), 422, "color", "navy")
    refused(client.post("/me/feedback", json={"item_id": "i00001", "kind": "love"}, headers=me), 422, "kind", "like")
    refused(client.post("/me/feedback", json={"item_id": "zzz", "kind": "like"}, headers=me), 422, "item_id", "zzz")
    refused(client.post("/me/feedback", json={"item_id": "i00001"}, headers=me), 422, "kind", "missing")
    refused(client.post("/me/feedback", content=b"{not json", headers={**me, "content-type": "application/json"}),
            422, "json_invalid")
    refused(client.post("/me/outfits/complete", json={"item_ids": ["i00001", "nope"], "category": "shoes"},
                        headers=me), 422, "item_ids", "nope")
    refused(client.post("/me/outfits/complete", json={"item_ids": [], "category": "shoes"}, headers=me), 422,
            "item_ids", "at least 1")
    refused(client.post("/me/outfits/compose", json={"categories": ["top"] * 9}, headers=me), 422, "categories")
    refused(client.post("/me/feedback", content=b"x" * 70_000, headers={**me, "content-type": "application/json"}),
            413, "65536 bytes")
    chunks = iter([b"[" * 40_000, b"[" * 40_000])  # no Content-Length: counted as it streams
    refused(client.post("/me/feedback", content=chunks, headers={**me, "content-type": "application/json"}),
            413, "too large")
    refused(client.get("/no/such/route"), 404, "/no/such/route")
    refused(client.patch("/me", headers=me), 405, "PATCH")


def test_features_without_a_run_say_how_to_turn_them_on(tiny_world, tmp_path):
    app = create_app(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}"))
    client = TestClient(app)
    me = bearer(issue_shopper_token(app.state.services.db, app.state.services.ds, "u00001"))
    answer = client.get("/me/recommendations", headers=me)
    assert answer.status_code == 503 and "--rec-run" in answer.json()["detail"]
    assert "--outfit-run" in client.post("/me/outfits/compose", json={"categories": ["top"]}, headers=me).text
    assert ok(client.get("/health"))["recommendations"] is False


# ---------------------------------------------------------------------------- retrieval

@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_index_returns_the_best_allowed_items(kind):
    rng = np.random.default_rng(0)
    items, query = rng.normal(size=(3000, 17)).astype(np.float32), rng.normal(size=17).astype(np.float32)
    allowed = rng.random(3000) > 0.3
    rows, scores = ItemIndex(items, IndexSpec(kind=kind, nprobe=64)).top_k(query, 10, allowed)
    assert allowed[rows].all() and np.all(np.diff(scores) <= 1e-6)
    exact = np.flatnonzero(allowed)[np.argsort(-(items[allowed] @ query))[:10]]
    recall = len(set(rows) & set(exact)) / 10
    assert recall == 1.0 if kind == "flat" else recall >= 0.8
    if kind == "flat":
        assert np.allclose(scores, items[rows] @ query, atol=1e-4)


# ---------------------------------------------------------------------------- the database and the server

@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_build_exactly_the_models_schema(backend, tmp_path):
    with empty_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            db.upgrade()
            db.upgrade()  # idempotent
            with db.engine.connect() as connection:
                assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
                assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
            assert set(inspect(db.engine).get_table_names()) == {"alembic_version", "accounts", "feedback",
                                                                 "user_vectors", "hidden_items", "designs"}
        finally:
            db.close()


def test_cli_issues_shopper_and_admin_tokens(tiny_world, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"

    def serve(*args: str):
        return CliRunner().invoke(cli_app, ["serve", "--data", str(tiny_world), "--db", url, *args])

    shopper, admin = serve("--issue-token", "u00001"), serve("--reset-admin-token")
    assert shopper.exit_code == admin.exit_code == 0, shopper.output + admin.output
    with Database(url).engine.connect() as connection:
        stored = connection.execute(text("SELECT role, user_id, token_hash FROM accounts ORDER BY id")).all()
    assert [tuple(row) for row in stored] == [("shopper", "u00001", hash_token(shopper.stdout.strip())),
                                              ("admin", None, hash_token(admin.stdout.strip()))]
    bad = serve("--issue-token", "nobody")
    assert bad.exit_code == 2 and "no user 'nobody'" in bad.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tiny_world: Path, rec_run: Path, db: str, port: int) -> tuple[subprocess.Popen, list[str]]:
    """`modiste serve` in a subprocess; returns it and the lines it printed before it answered."""
    proc = subprocess.Popen([sys.executable, "-m", "modiste.cli", "serve", "--data", str(tiny_world), "--db", db,
                             "--port", str(port), "--rec-run", str(rec_run)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    while not lines or not lines[-1].startswith("serving"):
        line = proc.stdout.readline()
        assert line, f"the server stopped: {''.join(lines)}"
        lines.append(line)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
            return proc, lines
        except httpx2.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not answer within 60 s")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_acknowledged_is_lost_when_the_server_is_killed(backend, tiny_world, runs, tmp_path):
    with empty_database(backend, tmp_path) as db:
        check_nothing_is_lost(tiny_world, runs, db)


def check_nothing_is_lost(tiny_world: Path, runs: tuple[Path, Path], db: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, lines = start_server(tiny_world, runs[0], db, port)
    try:
        admin = bearer(next(line for line in lines if line.startswith("admin token")).split()[-1])
        token = httpx2.post(f"{url}/admin/shoppers", json={"user_id": "u00030"}, headers=admin).json()["token"]
        me = bearer(token)
        for item, kind in (("i00001", "like"), ("i00002", "dislike"), ("i00003", "buy"), ("i00004", "like")):
            ok(httpx2.post(f"{url}/me/feedback", json={"item_id": item, "kind": kind}, headers=me), 201)
        taken_back = ok(httpx2.get(f"{url}/me/feedback", headers=me))[-1]["feedback_id"]
        ok(httpx2.delete(f"{url}/me/feedback/{taken_back}", headers=me), 204)
        ok(httpx2.put(f"{url}/admin/items/i00005/visibility", json={"hidden": True}, headers=admin))
        before = {path: httpx2.get(f"{url}{path}", headers=me).json() for path in ("/me", "/me/recommendations")}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    proc, lines = start_server(tiny_world, runs[0], db, port)
    try:
        assert not any(line.startswith("admin token") for line in lines)  # the admin exists already
        after = {path: httpx2.get(f"{url}{path}", headers=me).json() for path in ("/me", "/me/recommendations")}
        assert after == before
        assert [(f["item_id"], f["kind"]) for f in after["/me"]["feedback"]] == [
            ("i00001", "like"), ("i00002", "dislike"), ("i00003", "buy")]
        assert [i["item_id"] for i in httpx2.get(f"{url}/admin/hidden", headers=admin).json()] == ["i00005"]
        assert httpx2.get(f"{url}/items/i00005").status_code == 404
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


# ---------------------------------------------------------------------------- fuzzing from the schema

@pytest.fixture(scope="module")
def fuzzed(tiny_world, runs, tmp_path_factory):
    """(the app's schema for schemathesis, a shopper's headers, the admin's headers) over SQLite, with
    every feature on (tiny design runs too)."""
    from test_app_designs import train_design_runs  # here, not at the top: that module imports this one

    dvbpr, gan = train_design_runs(tiny_world, tmp_path_factory.mktemp("fuzz-design-runs"))
    db = f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'app.sqlite'}"
    app = create_app(Settings(data=tiny_world, db=db, rec_run=runs[0], outfit_run=runs[1], design_rec_run=dvbpr,
                              gan_run=gan))
    app.state.services.designs.search = PMConfig(steps=2, restarts=1)  # the fuzz checks the answers, not the designs
    services = app.state.services
    shopper = bearer(issue_shopper_token(services.db, services.ds, "u00040"))
    admin = bearer(reset_admin_token(services.db))
    return schemathesis.openapi.from_asgi("/openapi.json", app), shopper, admin


def test_no_request_the_schema_allows_gets_a_server_error(fuzzed):
    """Requests generated from /openapi.json for every operation (a shopper's token on /me, the
    admin's on /admin): never a 5xx, and every 4xx says what was wrong."""
    schema, shopper, admin = fuzzed
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        headers = admin if operation.path.startswith("/admin") else shopper

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=25, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def answers_sensibly(case):
            answer = case.call(headers=headers)
            where = (case.method, case.formatted_path, answer.text[:300])
            assert answer.status_code < 500, where
            if answer.status_code >= 400:
                assert answer.json().get("detail"), where

        answers_sensibly()
