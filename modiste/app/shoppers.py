"""A shopper's own state: feedback events in, opinions and taste vector out.

The feedback log is the truth: a shopper's opinion of an item is their latest event on it (a like,
a buy or a dislike). Their refitted vector is derived from the opinions and cached in
`user_vectors` under a basis (the model and a hash of the opinions); the cache is written after the
feedback commits, so a failed cache write never loses feedback, and a stale or missing entry is
recomputed on the next read.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from modiste.app.catalogue import Catalogue
from modiste.app.db import Account, Database, Feedback, UserVector
from modiste.app.recommend import FactorRecommender


def feedback_of(db: Database, account: Account) -> list[Feedback]:
    with db.read() as s:
        return list(s.scalars(select(Feedback).where(Feedback.account_id == account.id).order_by(Feedback.id)))


def add_feedback(db: Database, account: Account, item_id: str, kind: str) -> Feedback:
    with db.transaction() as s:
        event = Feedback(account_id=account.id, item_id=item_id, kind=kind)
        s.add(event)
    return event


def delete_feedback(db: Database, account: Account, feedback_id: str) -> bool:
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


def taste_vector(db: Database, rec: FactorRecommender, account: Account, mine: dict[int, str]) -> np.ndarray:
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
