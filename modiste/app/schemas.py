"""The API's typed requests and responses (pydantic): what /openapi.json documents.

Most models are fixed; those that name categories and attribute values are built per dataset
(`DatasetSchemas`), so that the schema lists the values a field takes and a wrong one is a 422
that names the field and the choices.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

ItemId = Annotated[str, Field(min_length=1, max_length=128, description="an item id of the catalogue",
                              examples=["i00042"])]
FeedbackKind = Literal["like", "dislike", "buy"]
MAX_K = 100
MAX_OUTFIT = 8


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- the catalogue ---------------------------------------------------------------------------

class ItemSummary(BaseModel):
    item_id: str
    category: str
    description: str
    image_url: str | None = Field(description="the item's picture (PNG), or null when the dataset has none")


class Item(ItemSummary):
    """An item's page: everything the catalogue knows about it."""

    caption: dict[str, str | None] = Field(description="the structured caption (Category, Color, Pattern, ...)")
    attributes: dict[str, str | None]
    hidden: bool = Field(description="taken off the shelves by an admin (only admins see hidden items)")


class ItemPage(BaseModel):
    total: int = Field(description="how many items match, over all pages")
    offset: int
    limit: int
    items: list[ItemSummary]


class Vocabulary(BaseModel):
    """The values the filters take."""

    categories: list[str]
    attributes: dict[str, list[str]]


# -- a shopper ---------------------------------------------------------------------------------

class ScoredItem(ItemSummary):
    score: float


class HistoryEntry(ItemSummary):
    timestamp: int


class FeedbackIn(Strict):
    item_id: ItemId
    kind: FeedbackKind


class FeedbackOut(BaseModel):
    feedback_id: str = Field(description="this event's id, to take it back (DELETE /me/feedback/{feedback_id})")
    item_id: str
    kind: FeedbackKind
    created_at: datetime


class Profile(BaseModel):
    user_id: str
    body: dict[str, str] | None = Field(description="body labels (Outfit4You), or null when the dataset has none")
    history: list[HistoryEntry] = Field(description="the shopper's training interactions, oldest first")
    feedback: list[FeedbackOut] = Field(description="their likes, dislikes and buys here, oldest first")


class Recommendations(BaseModel):
    items: list[ScoredItem]
    refitted: bool = Field(description="whether the shopper's feedback has reshaped their taste vector")


class OutfitItem(ItemSummary):
    taste: float = Field(description="how much the shopper likes this item, by the outfit model")


class Outfit(BaseModel):
    compatibility: float
    score: float = Field(description="compatibility plus the taste of every item")
    items: list[OutfitItem]


# -- an admin ---------------------------------------------------------------------------------

class ShopperIn(Strict):
    user_id: str = Field(min_length=1, max_length=128, description="a user id of the dataset")


class ShopperToken(BaseModel):
    user_id: str
    token: str = Field(description="the shopper's bearer token: shown once, stored only as a hash")


class Visibility(Strict):
    hidden: bool


class Health(BaseModel):
    dataset: str
    items: int
    users: int
    recommendations: bool
    outfits: bool
    index: str


class Problem(BaseModel):
    """Every 4xx answer: `detail` says what was wrong (for a bad field: a list naming each field)."""

    detail: str | list[dict]


class DatasetSchemas:
    """Request models that name this dataset's categories and attribute values."""

    def __init__(self, categories: list[str], attributes: dict[str, list[str]]):
        category = Literal[tuple(categories)]
        reserved = {"category", "q", "offset", "limit"} & set(attributes)
        if reserved:
            raise ValueError(f"attribute name(s) {', '.join(sorted(reserved))} clash with the item filters")
        self.Category = category
        self.ItemFilter = create_model(
            "ItemFilter", __base__=Strict,
            category=(category | None, Field(None, description="only items of this category")),
            q=(str | None, Field(None, min_length=1, max_length=200,
                                 description="free text: items by meaning, best first (or, with `--search keyword`, items whose "
                                             "caption or description holds every word)")),
            offset=(int, Field(0, ge=0, le=10**9)),
            limit=(int, Field(24, ge=1, le=MAX_K)),
            **{name: (Literal[tuple(values)] | None, Field(None, description=f"only items with this {name}"))
               for name, values in attributes.items() if values},
        )
        self.RecommendFilter = create_model(
            "RecommendFilter", __base__=Strict,
            k=(int, Field(10, ge=1, le=MAX_K, description="how many items")),
            category=(category | None, Field(None, description="only items of this category")),
        )
        self.CompleteIn = create_model(
            "CompleteIn", __base__=Strict,
            item_ids=(list[ItemId], Field(min_length=1, max_length=MAX_OUTFIT, description="the outfit so far")),
            category=(category, Field(description="the category of the missing item")),
            k=(int, Field(5, ge=1, le=MAX_K)),
        )
        self.ComposeIn = create_model(
            "ComposeIn", __base__=Strict,
            categories=(list[category], Field(min_length=1, max_length=MAX_OUTFIT,
                                              examples=[["top", "trousers", "shoes", "bag"]])),
        )
