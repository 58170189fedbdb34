"""The catalogue, open to anyone: browse and search, an item's page, its picture."""
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from modiste.app.schemas import DatasetSchemas, Health, Item, ItemPage, Problem, Vocabulary
from modiste.app.services import Deps, Services

NOT_FOUND = {404: {"model": Problem, "description": "no such item"}}


def visible(services: Services, item_id: str) -> int:
    row = services.catalogue.visible_row(item_id)
    if row is None:
        raise HTTPException(404, f"no item {item_id!r} in the catalogue")
    return row


def router(schemas: DatasetSchemas) -> APIRouter:
    r = APIRouter(tags=["catalogue"])
    ItemFilter = schemas.ItemFilter

    @r.get("/health", response_model=Health)
    def health(services: Deps) -> Health:
        """What this server serves."""
        return Health(dataset=services.ds.name, items=len(services.catalogue), users=len(services.ds.users),
                      recommendations=services.recommender is not None, outfits=services.outfits is not None,
                      index=services.settings.index.kind)

    @r.get("/vocabulary", response_model=Vocabulary)
    def vocabulary(services: Deps) -> Vocabulary:
        """The categories and attribute values the item filters take."""
        return Vocabulary(categories=services.catalogue.categories, attributes=services.catalogue.attributes)

    @r.get("/items", response_model=ItemPage)
    def items(services: Deps, query: Annotated[ItemFilter, Query()]) -> ItemPage:
        """Browse or search the catalogue: by category, attribute values and words, a page at a time."""
        filters = query.model_dump(exclude_none=True)
        category, text = filters.pop("category", None), filters.pop("q", None)
        offset, limit = filters.pop("offset"), filters.pop("limit")
        page = services.catalogue.search(category, filters, text, offset, limit)
        return ItemPage(total=page.total, offset=offset, limit=limit,
                        items=[services.catalogue.summary(row) for row in page.rows])

    @r.get("/items/{item_id}", response_model=Item, responses=NOT_FOUND)
    def item(services: Deps, item_id: str) -> Item:
        """An item's page: caption, description, attributes and the address of its picture."""
        return Item(**services.catalogue.page_data(visible(services, item_id)))

    @r.get("/items/{item_id}/image.png", response_class=Response, responses={
        200: {"content": {"image/png": {}}, "description": "the item's picture, 64x64"}, **NOT_FOUND})
    def image(services: Deps, item_id: str) -> Response:
        """The item's picture as PNG."""
        png = services.catalogue.png(visible(services, item_id))
        if png is None:
            raise HTTPException(404, f"dataset '{services.ds.name}' has no pictures")
        return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})

    return r
