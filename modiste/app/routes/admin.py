"""The admin's routes: issue shopper tokens, take items off the shelves and put them back."""

from fastapi import APIRouter, HTTPException
from sqlalchemy import delete, select

from modiste.app.auth import Admin, issue_shopper_token
from modiste.app.db import HiddenItem
from modiste.app.errors import BadField
from modiste.app.schemas import DatasetSchemas, Item, ItemSummary, Problem, ShopperIn, ShopperToken, Visibility
from modiste.app.services import Deps

PROBLEMS = {401: {"model": Problem, "description": "no or an unknown token"},
            403: {"model": Problem, "description": "not the admin's token"}}
NOT_FOUND = {404: {"model": Problem, "description": "no such item"}}


def router(_schemas: DatasetSchemas) -> APIRouter:
    r = APIRouter(prefix="/admin", tags=["admin"], responses=PROBLEMS)

    @r.post("/shoppers", response_model=ShopperToken, status_code=201)
    def issue(services: Deps, _admin: Admin, body: ShopperIn) -> ShopperToken:
        """A new token for a dataset user (their account is created on first issue; the old token stops working)."""
        try:
            token = issue_shopper_token(services.db, services.ds, body.user_id)
        except KeyError:
            raise BadField(("body", "user_id"), f"no user {body.user_id!r} in dataset '{services.ds.name}'",
                           body.user_id) from None
        services.tokens.forget_all()  # the shopper's old token stops working now, not when its entry expires
        return ShopperToken(user_id=body.user_id, token=token)

    @r.get("/items/{item_id}", response_model=Item, responses=NOT_FOUND)
    def item(services: Deps, _admin: Admin, item_id: str) -> Item:
        """An item's page, hidden or not."""
        row = services.catalogue.row(item_id)
        if row is None:
            raise HTTPException(404, f"no item {item_id!r} in the catalogue")
        return Item(**services.catalogue.page_data(row))

    @r.put("/items/{item_id}/visibility", response_model=Item, responses=NOT_FOUND)
    def set_visibility(services: Deps, _admin: Admin, item_id: str, body: Visibility) -> Item:
        """Hide an item (it leaves search, pages, recommendations and outfits) or show it again."""
        row = services.catalogue.row(item_id)
        if row is None:
            raise HTTPException(404, f"no item {item_id!r} in the catalogue")
        with services.db.transaction() as s:
            s.execute(delete(HiddenItem).where(HiddenItem.item_id == item_id))
            if body.hidden:
                s.add(HiddenItem(item_id=item_id))
        services.reload_hidden()
        return Item(**services.catalogue.page_data(row))

    @r.get("/hidden", response_model=list[ItemSummary])
    def hidden(services: Deps, _admin: Admin) -> list[ItemSummary]:
        """Every hidden item."""
        with services.db.read() as s:
            ids = list(s.scalars(select(HiddenItem.item_id).order_by(HiddenItem.item_id)))
        rows = [row for row in map(services.catalogue.row, ids) if row is not None]
        return [ItemSummary(**services.catalogue.summary(row)) for row in rows]

    return r
