"""A shopper's own state: feedback events in, opinions and taste vector out.

The feedback log is the truth: a shopper's opinion of an item is their latest event on it (a like,
a buy or a dislike). Their refitted vector is derived from the opinions and cached in
`user_vectors` under a basis (the model and a hash of the opinions); the cache is written after the
feedback commits, so a failed cache write never loses feedback, and a stale or missing entry is
recomputed on the next read.

`ShopperStates` keeps each active shopper's opinions, vector and shortlist (their best items,
`FactorRecommender.shortlist`) in memory too, so that asking for recommendations reads nothing from
the database and, most of the time, searches nothing. It is exact as long as one process serves a
database (as the hidden items already assume): this process's feedback routes forget the shopper's
entry when they change the log, and an entry read while the log changed is not kept.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np
from cachetools import LRUCache
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from modiste.app.auth import Caller
from modiste.app.catalogue import Catalogue
from modiste.app.db import Database, Feedback, UserVector
from modiste.app.recommend import FactorRecommender, Shortlist


@dataclass(frozen=True)
class ShopperState:
    """opinions: item row -> like | buy | dislike; vector: their taste vector, and shortlist: their best
    items under it, their own and those they gave feedback on left out (both None without a ranking run)."""

    opinions: dict[int, str]
    vector: np.ndarray | None
    shortlist: Shortlist | None


class ShopperStates:
    """account id -> ShopperState, read through from the database; thread-safe."""

    def __init__(self, db: Database, catalogue: Catalogue, recommender: FactorRecommender | None,
                 size: int = 20_000):
        self.db, self.catalogue, self.recommender = db, catalogue, recommender
        self._entries: LRUCache = LRUCache(size)
        self._changes = 0  # counts forget() calls: a load that saw one happen keeps nothing
        self._lock = threading.Lock()

    def cached(self, account: Caller) -> ShopperState | None:
        with self._lock:
            return self._entries.get(account.id)

    def load(self, account: Caller) -> ShopperState:
        with self._lock:
            changes = self._changes
        mine = opinions(feedback_of(self.db, account), self.catalogue)
        vector = shortlist = None
        if self.recommender is not None:
            vector = taste_vector(self.db, self.recommender, account, mine)
            shortlist = self.recommender.shortlist(account.user_id, vector, left_out=mine)
        state = ShopperState(mine, vector, shortlist)
        with self._lock:
            if changes == self._changes:
                self._entries[account.id] = state
        return state

    def get(self, account: Caller) -> ShopperState:
        return self.cached(account) or self.load(account)

    def forget(self, account: Caller) -> None:
        """Call after changing the account's feedback log."""
        with self._lock:
            self._changes += 1
            self._entries.pop(account.id, None)


def feedback_of(db: Database, account: Caller) -> list[Feedback]:
    with db.read() as s:
        return list(s.scalars(select(Feedback).where(Feedback.account_id == account.id).order_by(Feedback.id)))


def add_feedback(db: Database, account: Caller, item_id: str, kind: str) -> Feedback:
    with db.transaction() as s:
        event = Feedback(account_id=account.id, item_id=item_id, kind=kind)
        s.add(event)
    return event


def delete_feedback(db: Database, account: Caller, feedback_id: str) -> bool:
    """Delete one of the account's own events; False when it has no such event (whoever's it is)."""
    with db.transaction() as s:
        result = s.execute(delete(Feedback).where(Feedback.public_id == feedback_id,
                                                  Feedback.account_id == account.id))
    return result.rowcount == 1


def opinions(events: list[Feedback], catalogue: Catalogue) -> dict[int, str]:
    """item row -> the latest kind of event on it (items that left the catalogue are dropped)."""
    latest: dict[int, str] = {}
    for event in events:
        row = catalogue.row(event.item_id)
        if row is not None:
            latest[row] = event.kind
    return latest


def taste_vector(db: Database, rec: FactorRecommender, account: Caller, mine: dict[int, str]) -> np.ndarray:
    """The shopper's vector under their opinions: the trained one, or the cached or fresh refit."""
    user = rec.user_row(account.user_id)
    if not mine:
        return rec.vector(user, mine)
    basis = f"{rec.fingerprint}:{hashlib.sha256(repr(sorted(mine.items())).encode()).hexdigest()[:32]}"
    with db.read() as s:
        cached = s.get(UserVector, account.id)
    if cached is not None and cached.basis == basis:
        return np.frombuffer(cached.vector, np.float32)
    vector = rec.vector(user, mine)
    try:
        with db.transaction() as s:
            s.merge(UserVector(account_id=account.id, basis=basis, vector=vector.tobytes()))
    except IntegrityError:  # another request cached it at the same moment: theirs is as good
        pass
    return vector
