"""A shopper's designs: new pictures of a category that the GAN draws and preference maximisation
steers toward the shopper's taste (`modiste.design`: DVBPR's theta_u . Phi minus the discriminator's
(D - 1)^2), stored with their scores so that the shopper can look at them again and delete them.

`DesignStudio` loads the two runs once, at start: a DVBPR run on the served dataset (the taste) and a
GAN run on the same dataset (the pictures); a run of another dataset or of the wrong kind stops the
server with a message that names it.

The search is shorter than the paper's. Its 100 Adam steps from 3 random starts per design take 4.5
to 5.3 s of CPU for 4 designs on the default world (10 s for 8); the app's 40 steps from 2 starts take
1.3 to 1.5 s for 4 designs and 2.2 s for 8 (1.8 and 3.3 s of wall time on one thread, the machine's
load at 3), and keep 68-88% of the rise in theta_u . Phi over the random starts (three users and
categories). Every request starts from fresh random points, so asking again gives new designs, and
one request designs at a time: each keeps a core busy for a second or two, and two at once would
only share the cores.
"""

from __future__ import annotations

import io
import secrets
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import delete, select
from sqlalchemy.orm import defer

from modiste.app.auth import Caller
from modiste.app.db import Database, Design, now
from modiste.app.settings import Settings
from modiste.data import Dataset
from modiste.design.api import load_runs, user_row
from modiste.design.pm import PMConfig, maximise_preference
from modiste.rec.evaluate import run_dataset

SEARCH = PMConfig(steps=40, restarts=2)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def open_studio(settings: Settings, ds: Dataset, db: Database) -> DesignStudio | None:
    """The studio over the settings' design runs; None when the server runs without them."""
    if settings.design_rec_run is None:
        return None
    return DesignStudio(settings.design_rec_run, settings.gan_run, ds, db)


class DesignStudio:
    """Designs new items for shoppers and keeps each shopper's designs (only ever their own)."""

    def __init__(self, rec_run: str | Path, gan_run: str | Path, ds: Dataset, db: Database,
                 search: PMConfig = SEARCH):
        run_dataset(rec_run, ds.path)  # the DVBPR run must be of the served dataset (a ValueError naming both)
        self.runs = load_runs(rec_run, gan_run)  # a DVBPR run, and a GAN run of its dataset
        self.db, self.search = db, search
        self.categories: list[str] = list(self.runs.gan.categories)
        self._one_at_a_time = threading.Lock()

    def create(self, account: Caller, category: str, n: int) -> list[Design]:
        """n new designs of `category` for the shopper, best first, stored before they are returned."""
        user = user_row(self.runs, account.user_id)
        search = replace(self.search, seed=secrets.randbits(63))
        with self._one_at_a_time:
            found = maximise_preference(self.runs.gan, self.runs.rec, [user], [category], n=n, config=search)
        made = now()
        designs = [Design(account_id=account.id, category=category, score=float(found.scores[0, i]),
                          realism=float(found.realism[0, i]), png=png_bytes(found.images[0, i]), created_at=made)
                   for i in range(n)]
        with self.db.transaction() as s:
            s.add_all(designs)
        return designs

    def designs_of(self, account: Caller) -> list[Design]:
        """The shopper's designs without their pictures: the latest request's first, each request's best first."""
        with self.db.read() as s:
            return list(s.scalars(select(Design).options(defer(Design.png)).where(Design.account_id == account.id)
                                  .order_by(Design.created_at.desc(), Design.id)))

    def get(self, account: Caller, design_id: str) -> Design | None:
        """One of the shopper's designs without its picture; None when they have no such design (whoever's it is)."""
        with self.db.read() as s:
            return s.scalar(select(Design).options(defer(Design.png))
                            .where(Design.public_id == design_id, Design.account_id == account.id))

    def png(self, account: Caller, design_id: str) -> bytes | None:
        """The picture of one of the shopper's designs; None when they have no such design (whoever's it is)."""
        with self.db.read() as s:
            return s.scalar(select(Design.png).where(Design.public_id == design_id, Design.account_id == account.id))

    def delete(self, account: Caller, design_id: str) -> bool:
        """Delete one of the shopper's designs; False when they have no such design (whoever's it is)."""
        with self.db.transaction() as s:
            result = s.execute(delete(Design).where(Design.public_id == design_id, Design.account_id == account.id))
        return result.rowcount == 1
