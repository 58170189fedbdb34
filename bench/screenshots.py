"""Screenshots of the shopper's web page for the README: a laptop's view and a phone's.

    python bench/screenshots.py --data data/world-default --rec-run data/runs/bpr-default \
        --outfit-run data/runs/outfit-default [--design-rec-run data/runs/dvbpr-default \
        --gan-run data/runs/gan-default] [--user u00042] [--out docs]

Serves the app (`create_app`, under uvicorn on loopback) over the world and its runs, with a fresh
SQLite file in a temporary folder (the dataset's own database is left alone), issues a token for
`--user`, signs in through the page in Debian's chromium (Playwright; /usr/bin/chromium) and likes
the top recommendation, so the list shows what the refit brought in. Each size gets a fresh
database, so both show the same moment. Writes OUT/app-desktop.png (1280x800) and OUT/app-phone.png
(390x844); with the design runs also OUT/app-designs.png and OUT/app-designs-phone.png, the Designs
tab after asking for 5 shoes and then 5 dresses. Not run in CI.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from modiste.app import Settings, create_app
from modiste.app.auth import issue_shopper_token

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}
SIZES = {"app-desktop.png": DESKTOP, "app-phone.png": PHONE}
DESIGN_SIZES = {"app-designs.png": DESKTOP, "app-designs-phone.png": PHONE}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(settings: Settings, user_id: str) -> Iterator[tuple[str, str]]:
    """The app served by uvicorn in a thread while in the block: (its URL, a token for `user_id`)."""
    app = create_app(settings)
    token = issue_shopper_token(app.state.services.db, app.state.services.ds, user_id)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/", token
    finally:
        server.should_exit = True
        thread.join()


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("Shopper token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def settle_and_shoot(page: Page, path: Path) -> None:
    """Wait for every picture, clear the toast and the pointer's hover, shoot with the cards' arrival
    animations run to their end."""
    for image in page.locator("main img").all():
        expect(image).to_have_js_property("complete", True)
    page.locator("#toast").evaluate("toast => toast.replaceChildren()")
    page.mouse.move(0, 0)
    page.screenshot(path=path, animations="disabled")


def shoot(page: Page, url: str, token: str, path: Path) -> None:
    """Sign in, like the top recommendation, wait for the refreshed list and its pictures, shoot."""
    sign_in(page, url, token)
    expect(page.locator("#recs .card")).to_have_count(10)
    page.locator("#recs .card").first.locator("button[data-kind=like]").click()
    expect(page.locator("#recs-status")).to_have_text("Tuned to your likes, dislikes and buys.")
    settle_and_shoot(page, path)


def shoot_designs(page: Page, url: str, token: str, path: Path) -> None:
    """Sign in on the Designs tab, ask for 5 shoes and then 5 dresses, shoot."""
    sign_in(page, url + "#designs", token)
    for count, category in enumerate(("shoes", "dress"), start=1):
        page.locator("#design-category").select_option(category)
        page.get_by_label("How many").fill("5")
        page.get_by_role("button", name="Design for me").click()
        expect(page.locator("#designs .card")).to_have_count(5 * count, timeout=60_000)
    settle_and_shoot(page, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rec-run", type=Path, required=True)
    parser.add_argument("--outfit-run", type=Path, required=True)
    parser.add_argument("--design-rec-run", type=Path, help="a DVBPR run: with --gan-run, shoot the Designs tab too")
    parser.add_argument("--gan-run", type=Path)
    parser.add_argument("--user", default="u00042")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on the PATH: apt-get install chromium (or run .ci/chromium)")

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        shots = [(name, viewport, shoot) for name, viewport in SIZES.items()]
        if args.gan_run is not None:
            shots += [(name, viewport, shoot_designs) for name, viewport in DESIGN_SIZES.items()]
        for name, viewport, shooter in shots:
            settings = Settings(data=args.data, db=f"sqlite:///{Path(tmp) / name}.sqlite", rec_run=args.rec_run,
                                outfit_run=args.outfit_run, design_rec_run=args.design_rec_run, gan_run=args.gan_run)
            with served(settings, args.user) as (url, token):
                context = browser.new_context(viewport=viewport)
                shooter(context.new_page(), url, token, args.out / name)
                context.close()
            print(f"wrote {args.out / name}")
        browser.close()


if __name__ == "__main__":
    main()
