"""The shopper's web page (modiste/app/web/), end to end in a real browser.

Playwright drives Debian's chromium (`/usr/bin/chromium`; Playwright's own browser download is not
possible here) against the app (`create_app`) served by uvicorn on a loopback port, over the tiny
world with a tiny BPR run and a tiny outfit run trained once for the module on one torch thread.
A shopper signs in with an issued token (a wrong one is refused with the server's words), sees
their profile, history and recommendations with their pictures, likes and dislikes items and sees
the list change, takes feedback back, completes and composes outfits (the page shows what the API
answers), searches the catalogue and signs out; at a laptop's size and at a phone's, where nothing
may overflow sideways. The page fetches nothing from anywhere but its own server. A server without
runs shows its features as off. Screenshots of each size go to the test's folder and are checked
to be real pictures of the page.

Without chromium on the PATH the browser tests are skipped, saying so; `.ci/run` installs it
(`.ci/chromium`).
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import numpy as np
import pytest
from PIL import Image
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from modiste.app import Settings, create_app
from modiste.app.auth import issue_shopper_token

CHROMIUM = shutil.which("chromium")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIGNED_OUT_401 = "Failed to load resource: the server responded with a status of 401"


# ---------------------------------------------------------------------------- a server, a browser

@pytest.fixture(scope="module")
def runs(app_runs) -> tuple[Path, Path]:
    return app_runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """The app over `settings`, served by uvicorn in a thread on a free loopback port."""

    def __init__(self, settings: Settings):
        self.app = create_app(settings)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def token(self, user_id: str) -> str:
        services = self.app.state.services
        return issue_shopper_token(services.db, services.ds, user_id)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def server(tiny_world, runs, tmp_path_factory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("web-db") / "app.sqlite"
    served = Served(Settings(data=tiny_world, db=f"sqlite:///{db}", rec_run=runs[0], outfit_run=runs[1]))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no chromium on the PATH: install Debian's (`apt-get install chromium`, as .ci/chromium does)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A fresh browser context at a viewport size on one server, recording what the page asks for
    and every error it meets."""

    def __init__(self, browser: Browser, url: str, viewport: dict):
        self.url, self.viewport = url, viewport
        self.context = browser.new_context(viewport=viewport, base_url=url)
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def open(self, path: str = "/") -> Page:
        self.page.goto(path)
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        return self.page

    def check_clean(self, allowed_errors: tuple[str, ...] = ()) -> None:
        """Nothing fetched from another origin; no script error, no console error but those allowed."""
        assert self.requests and all(url.startswith(self.url + "/") for url in self.requests), self.requests
        assert [e for e in self.errors if not e.startswith(allowed_errors)] == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visits(browser) -> Iterator[Callable[[str, dict], Visit]]:
    opened: list[Visit] = []

    def visit(url: str, viewport: dict) -> Visit:
        opened.append(Visit(browser, url, viewport))
        return opened[-1]

    yield visit
    for v in opened:
        v.close()


# ---------------------------------------------------------------------------- helpers

def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Shopper token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account")).to_be_visible()


def item_ids(page: Page, selector: str) -> list[str]:
    return page.locator(f"{selector} .card").evaluate_all("cards => cards.map(c => c.dataset.item)")


def pictures_loaded(page: Page, selector: str, at_least: int) -> None:
    """At least `at_least` cards under `selector`, and every picture of theirs loaded (the 64x64 PNG
    decoded: naturalWidth 64), drawn larger than it is, crisply, with a text alternative."""
    images = page.locator(f"{selector} .card img")
    expect(images.nth(at_least - 1)).to_be_attached()
    for i in range(images.count()):
        expect(images.nth(i)).to_have_js_property("complete", True)
    widths = images.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.getBoundingClientRect().width, "
                                 "getComputedStyle(i).imageRendering, i.alt])")
    assert len(widths) >= at_least
    for natural, drawn, rendering, alt in widths:
        assert natural == 64 and drawn > 64 and rendering == "pixelated" and alt


def no_sideways_overflow(page: Page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width <= inner, f"the page is {width} px wide in a {inner} px window"


def screenshot(page: Page, path: Path, viewport: dict) -> None:
    """A screenshot that is a picture of a page: the viewport's size, many colours, not mostly one."""
    page.locator("#toast").evaluate("toast => toast.replaceChildren()")
    page.screenshot(path=path)
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert picture.shape == (viewport["height"], viewport["width"], 3)
    colours, counts = np.unique(picture.reshape(-1, 3), axis=0, return_counts=True)
    assert len(colours) > 200 and counts.max() < 0.8 * counts.sum()


def columns(page: Page, selector: str) -> int:
    return len(set(page.locator(f"{selector} > .card").evaluate_all(
        "cards => cards.map(c => Math.round(c.getBoundingClientRect().left))")))


# ---------------------------------------------------------------------------- the tests

def test_the_page_is_served_beside_the_api_and_outside_its_schema(server):
    page = httpx2.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css"), ("api.js", "text/javascript")):
        answer = httpx2.get(f"{server.url}/static/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
    for missing in ("nope.js", "..%2Fmain.py", "%2E%2E%2Froutes%2Fweb.py"):
        answer = httpx2.get(f"{server.url}/static/{missing}")
        assert answer.status_code == 404 and answer.json()["detail"]
    paths = httpx2.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/" not in paths and not any(path.startswith("/static") for path in paths)


def test_a_shopper_on_a_laptop(server, visits, tmp_path):
    visit = visits(server.url, DESKTOP)
    page = visit.open()

    # A wrong token is refused with the server's own words; the right one signs in.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Shopper token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("That token was not accepted: unknown or replaced token.")
    token = server.token("u00010")
    sign_in(page, token)
    expect(page.locator("#who")).to_have_text("u00010")
    assert page.evaluate("localStorage.getItem('modiste.token')") == token
    as_shopper = {"Authorization": f"Bearer {token}"}
    me = httpx2.get(f"{server.url}/me", headers=as_shopper).json()

    # Profile, history and recommendations, with their pictures.
    expect(page.locator("#body-chips li")).to_have_count(len(me["body"] or {}))
    pictures_loaded(page, "#recent", at_least=min(5, len(me["history"])))
    assert item_ids(page, "#recent") == [i["item_id"] for i in me["history"][-5:][::-1]]
    pictures_loaded(page, "#recs", at_least=10)
    assert columns(page, "#recs") == 5
    before = item_ids(page, "#recs")
    screenshot(page, tmp_path / "desktop-for-you.png", DESKTOP)

    # A like refits the shopper's taste: the liked item leaves the list and the list changes.
    liked = before[0]
    page.locator(f"#recs .card[data-item='{liked}']").get_by_role("button", name=re.compile("^Like:")).click()
    expect(page.locator(f"#recs .card[data-item='{liked}']")).to_have_count(0)
    expect(page.locator("#recs-status")).to_have_text("Tuned to your likes, dislikes and buys.")
    after_like = item_ids(page, "#recs")
    remaining = [i for i in before if i != liked]
    assert len(after_like) == 10 and after_like[:len(remaining)] != remaining  # not just one item less
    expect(page.locator("#recs .badge").first).to_have_text("New")

    # A dislike removes that item too; the toast's Undo takes it back and restores the list.
    disliked = after_like[1]
    page.locator(f"#recs .card[data-item='{disliked}']").get_by_role("button", name=re.compile("^Dislike:")).click()
    expect(page.locator(f"#recs .card[data-item='{disliked}']")).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("Disliked")
    page.locator("#toast").get_by_role("button", name="Undo").click()
    expect(page.locator("#toast")).to_contain_text("Feedback taken back")
    expect(page.locator(f"#recs .card[data-item='{disliked}']")).to_have_count(1)
    assert item_ids(page, "#recs") == after_like

    # The profile lists the feedback; a card's pressed button takes its feedback back.
    page.get_by_role("link", name="Profile").click()
    expect(page.locator("#feedback-list li")).to_have_count(1)
    expect(page.locator("#feedback-list li").first).to_contain_text("Liked")
    pictures_loaded(page, "#history", at_least=len(me["history"]))
    buy = page.locator("#history .card").first.get_by_role("button", name=re.compile("^Buy:"))
    buy.click()
    expect(buy).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#feedback-list li")).to_have_count(2)
    buy.click()
    expect(buy).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#feedback-list li")).to_have_count(1)
    page.locator("#feedback-list li").first.get_by_role("button", name="Take back").click()
    expect(page.locator("#feedback-list li.empty")).to_be_visible()

    # Complete an outfit around a recommended item, then compose a whole one.
    page.get_by_role("link", name="For you").click()
    expect(page.locator("#recs-status")).to_have_text("Picked from your history.")  # no feedback left
    assert item_ids(page, "#recs") == before
    seed = before[0]
    page.locator(f"#recs .card[data-item='{seed}']").get_by_role("button", name="Style it").click()
    expect(page).to_have_url(f"{server.url}/#outfits")
    expect(page.locator(f"#outfit-so-far .piece[data-item='{seed}']")).to_be_visible()
    pictures_loaded(page, "#complete-results", at_least=6)
    completed = httpx2.post(f"{server.url}/me/outfits/complete", headers=as_shopper, json={
        "item_ids": [seed], "category": page.locator("#complete-category").input_value(), "k": 6}).json()
    assert item_ids(page, "#complete-results") == [i["item_id"] for i in completed]
    page.get_by_role("button", name="Compose").click()
    pictures_loaded(page, "#compose-result", at_least=4)
    composed = httpx2.post(f"{server.url}/me/outfits/compose", headers=as_shopper,
                           json={"categories": ["bag", "shoes", "top", "trousers"]}).json()
    assert item_ids(page, "#compose-result") == [i["item_id"] for i in composed["items"]]
    expect(page.locator("#compatibility")).to_have_text(f"{composed['compatibility']:.2f}")
    no_sideways_overflow(page)

    # Search the catalogue: the page shows what the API finds.
    page.get_by_role("link", name="Catalogue").click()
    page.get_by_role("searchbox", name="Search").fill("blue")
    page.locator("#search-category").select_option("top")
    page.get_by_role("button", name="Search", exact=True).click()
    expected = httpx2.get(f"{server.url}/items", params={"q": "blue", "category": "top"}).json()
    assert expected["total"] > 1
    expect(page.locator("#search-status")).to_have_text(f"{expected['total']} items matching “blue”")
    assert item_ids(page, "#search-results") == [i["item_id"] for i in expected["items"]]
    pictures_loaded(page, "#search-results", at_least=len(expected["items"]))

    # Sign out: the token is gone, also after a reload.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("link", name="For you").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('modiste.token')") is None
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    visit.check_clean(allowed_errors=(SIGNED_OUT_401,))


def test_a_shopper_on_a_phone(server, visits, tmp_path):
    visit = visits(server.url, PHONE)
    page = visit.open("/#catalogue")
    pictures_loaded(page, "#search-results", at_least=24)
    no_sideways_overflow(page)
    page.get_by_role("link", name="Sign in").click()
    sign_in(page, server.token("u00011"))
    pictures_loaded(page, "#recs", at_least=10)
    assert columns(page, "#recs") == 2
    no_sideways_overflow(page)
    screenshot(page, tmp_path / "phone-for-you.png", PHONE)
    page.locator("#recs .card").first.get_by_role("button", name="Style it").click()
    pictures_loaded(page, "#complete-results", at_least=6)
    page.get_by_role("button", name="Compose").click()
    pictures_loaded(page, "#compose-result", at_least=4)
    no_sideways_overflow(page)
    page.get_by_role("link", name="Profile").click()
    pictures_loaded(page, "#history", at_least=1)
    no_sideways_overflow(page)
    screenshot(page, tmp_path / "phone-profile.png", PHONE)
    visit.check_clean()


def test_a_server_without_runs_shows_its_features_as_off(tiny_world, tmp_path, visits):
    served = Served(Settings(data=tiny_world, db=f"sqlite:///{tmp_path / 'app.sqlite'}"))
    try:
        visit = visits(served.url, DESKTOP)
        page = visit.open()
        sign_in(page, served.token("u00012"))
        expect(page.locator("#recs .notice")).to_contain_text("Recommendations are off")
        expect(page.locator("#recs .notice")).to_contain_text("start the server with --rec-run RUN")
        pictures_loaded(page, "#recent", at_least=1)
        page.locator("#recent .card").first.get_by_role("button", name="Style it").click()
        expect(page.locator("#complete-results .notice")).to_contain_text("start the server with --outfit-run RUN")
        page.get_by_role("button", name="Compose").click()
        expect(page.locator("#compose-result .notice")).to_contain_text("Outfits are off")
        visit.check_clean(allowed_errors=("Failed to load resource: the server responded with a status of 503",))
    finally:
        served.stop()
