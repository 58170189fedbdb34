"""A shopper's own routes. Every one acts on the caller's account and takes no user id, so there is
nothing in a URL or body that could name another shopper; an id of someone else's (a feedback
event) is answered exactly as one that does not exist."""
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Response

from modiste.app import shoppers
from modiste.app.auth import Caller, Shopper
from modiste.app.catalogue import body_profile
from modiste.app.errors import BadField
from modiste.app.schemas import (DatasetSchemas, FeedbackIn, FeedbackOut, HistoryEntry, Outfit, Problem, Profile,
                                 Recommendations, ScoredItem)
from modiste.app.services import Deps, Services

PROBLEMS = {401: {"model": Problem, "description": "no or an unknown token"},
            403: {"model": Problem, "description": "not a shopper's token"}}
OFF = {503: {"model": Problem, "description": "the server was started without the run this needs"}}


def _feedback_out(event) -> FeedbackOut:
    return FeedbackOut(feedback_id=event.public_id, item_id=event.item_id, kind=event.kind, created_at=event.created_at)


def _banned(services: Services, mine: dict[int, str]) -> np.ndarray:
    """Items never to offer this shopper: hidden ones and the ones they dislike."""
    banned = services.catalogue.hidden.copy()
    banned[[row for row, kind in mine.items() if kind == "dislike"]] = True
    return banned


def _known(services: Services, item_id: str, loc: tuple) -> None:
    """A 422 naming the field when the body names an item the shopper cannot see."""
    if services.catalogue.visible_row(item_id) is None:
        raise BadField(loc, f"no item {item_id!r} in the catalogue", item_id)


def _opinions(services: Services, account: Caller) -> dict[int, str]:
    return services.shoppers.get(account).opinions


def router(schemas: DatasetSchemas) -> APIRouter:
    r = APIRouter(prefix="/me", tags=["shopper"], responses=PROBLEMS)
    RecommendFilter, CompleteIn, ComposeIn = schemas.RecommendFilter, schemas.CompleteIn, schemas.ComposeIn

    @r.get("", response_model=Profile)
    def profile(services: Deps, me: Shopper) -> Profile:
        """The shopper's profile: body labels, history and feedback."""
        catalogue = services.catalogue
        entries = [HistoryEntry(**catalogue.summary(catalogue.row(item_id)), timestamp=ts)
                   for item_id, ts in services.histories.of(me.user_id)]
        return Profile(user_id=me.user_id, body=body_profile(services.ds, me.user_id), history=entries,
                       feedback=[_feedback_out(e) for e in shoppers.feedback_of(services.db, me)])

    @r.get("/feedback", response_model=list[FeedbackOut])
    def feedback(services: Deps, me: Shopper) -> list[FeedbackOut]:
        """The shopper's likes, dislikes and buys, oldest first."""
        return [_feedback_out(e) for e in shoppers.feedback_of(services.db, me)]

    @r.post("/feedback", response_model=FeedbackOut, status_code=201)
    def give_feedback(services: Deps, me: Shopper, body: FeedbackIn) -> FeedbackOut:
        """Like, dislike or buy an item. Stored before the answer; the next recommendations follow it."""
        _known(services, body.item_id, ("body", "item_id"))
        event = shoppers.add_feedback(services.db, me, body.item_id, body.kind)
        services.shoppers.forget(me)
        services.shoppers.load(me)  # refit now, so the next recommendations are quick
        return _feedback_out(event)

    @r.delete("/feedback/{feedback_id}", status_code=204,
              responses={404: {"model": Problem, "description": "no such feedback of yours"}})
    def take_back(services: Deps, me: Shopper, feedback_id: Annotated[str, Path(max_length=64)]) -> Response:
        """Take back one of the shopper's own feedback events."""
        if not shoppers.delete_feedback(services.db, me, feedback_id):
            raise HTTPException(404, f"you have no feedback {feedback_id!r}")
        services.shoppers.forget(me)
        return Response(status_code=204)

    @r.get("/recommendations", response_model=Recommendations, responses=OFF)
    async def recommendations(services: Deps, me: Shopper,
                              query: Annotated[RecommendFilter, Query()]) -> Recommendations:
        """The shopper's top k, leaving out what they have, gave feedback on, or is hidden."""
        # async, and no worker thread: the shopper's state is in memory, or read here on the event loop
        # (as a token is, in modiste.app.auth: a hand-over to a thread costs more than the read)
        rec = services.need_recommender()
        state = services.shoppers.get(me)
        mine = state.opinions
        allowed = ~services.catalogue.hidden
        allowed[list(mine)] = False  # given feedback on: not offered again
        if query.category is not None:
            allowed &= services.catalogue.category == query.category
        rows, scores = rec.recommend(me.user_id, state.vector, query.k, allowed, state.shortlist)
        return Recommendations(items=[ScoredItem(**services.catalogue.summary(row), score=float(score))
                                      for row, score in zip(rows, scores)], refitted=bool(mine))

    @r.post("/outfits/complete", response_model=list[ScoredItem], responses=OFF)
    def complete(services: Deps, me: Shopper, body: CompleteIn) -> list[ScoredItem]:
        """The best items of a category to go with the given ones, to the shopper's taste."""
        outfits = services.need_outfits()
        for i, item_id in enumerate(body.item_ids):
            _known(services, item_id, ("body", "item_ids", i))
        found = outfits.complete(body.item_ids, body.category, me.user_id, body.k,
                                 _banned(services, _opinions(services, me)))
        return [ScoredItem(**services.catalogue.summary(services.catalogue.row(i["item_id"])), score=i["score"])
                for i in found]

    @r.post("/outfits/compose", response_model=Outfit, responses=OFF)
    def compose(services: Deps, me: Shopper, body: ComposeIn) -> Outfit:
        """A whole outfit over the given categories, to the shopper's taste."""
        outfits = services.need_outfits()
        try:
            found = outfits.compose(body.categories, me.user_id, _banned(services, _opinions(services, me)))
        except ValueError as e:  # e.g. a category with nothing left to choose
            raise BadField(("body", "categories"), str(e), body.categories) from None
        items = [{**services.catalogue.summary(services.catalogue.row(i["item_id"])), "taste": i["taste"]}
                 for i in found["items"]]
        return Outfit(compatibility=found["compatibility"], score=found["score"], items=items)

    return r
