"""A shopper's designs (/me/designs): new items of a category drawn for their taste, kept until they
delete them. Like every /me route they act on the caller's account only; a design id of someone
else's is answered exactly as one that does not exist. Without design runs every route answers 503
and names the options that turn them on."""
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, Field, create_model

from modiste.app.auth import Shopper
from modiste.app.db import Design
from modiste.app.designs import DesignStudio
from modiste.app.errors import BadField
from modiste.app.routes.me import OFF, PROBLEMS
from modiste.app.schemas import DatasetSchemas, Problem, Strict
from modiste.app.services import Deps

MAX_DESIGNS = 8
NOT_FOUND = {404: {"model": Problem, "description": "no such design of yours"}}
DesignId = Annotated[str, Path(max_length=64, description="a design's id, from POST or GET /me/designs")]


class DesignOut(BaseModel):
    design_id: str = Field(description="this design's id, for GET and DELETE /me/designs/{design_id}")
    category: str
    score: float = Field(description="the shopper's preference for it: the DVBPR run's theta_u . Phi of the picture")
    realism: float = Field(description="(D - 1)^2 by the GAN's discriminator: the lower, the more it looks like "
                                       "the catalogue's pictures")
    created_at: datetime
    image_url: str = Field(description="its picture (PNG, 64x64): send the bearer token")


def _out(design: Design) -> DesignOut:
    return DesignOut(design_id=design.public_id, category=design.category, score=design.score, realism=design.realism,
                     created_at=design.created_at, image_url=f"/me/designs/{design.public_id}/image.png")


async def need_studio(services: Deps) -> DesignStudio:  # async: no worker thread just to read an attribute
    return services.need_designs()


Studio = Annotated[DesignStudio, Depends(need_studio)]


def router(schemas: DatasetSchemas) -> APIRouter:
    r = APIRouter(prefix="/me/designs", tags=["shopper"], responses={**PROBLEMS, **OFF})
    DesignIn = create_model(
        "DesignIn", __base__=Strict,
        category=(schemas.Category, Field(description="the category of the new items")),
        n=(int, Field(4, ge=1, le=MAX_DESIGNS, description="how many designs")),
    )

    @r.post("", response_model=list[DesignOut], status_code=201)
    def create(me: Shopper, studio: Studio, body: DesignIn) -> list[DesignOut]:
        """Design n new items of a category for the shopper (a second or two each request), stored before the
        answer; best first by the search's objective, score minus realism."""
        if body.category not in studio.categories:
            raise BadField(("body", "category"), f"the GAN draws no {body.category!r}: it draws "
                                                 f"{', '.join(studio.categories)}", body.category)
        return [_out(d) for d in studio.create(me, body.category, body.n)]

    @r.get("", response_model=list[DesignOut])
    def designs_of(me: Shopper, studio: Studio) -> list[DesignOut]:
        """The shopper's designs: the latest request's first, each request's best first."""
        return [_out(d) for d in studio.designs_of(me)]

    @r.get("/{design_id}", response_model=DesignOut, responses=NOT_FOUND)
    def design(me: Shopper, studio: Studio, design_id: DesignId) -> DesignOut:
        """One of the shopper's designs."""
        found = studio.get(me, design_id)
        if found is None:
            raise HTTPException(404, f"you have no design {design_id!r}")
        return _out(found)

    @r.get("/{design_id}/image.png", response_class=Response, responses={
        200: {"content": {"image/png": {}}, "description": "the design's picture, 64x64"}, **NOT_FOUND})
    def image(me: Shopper, studio: Studio, design_id: DesignId) -> Response:
        """The picture of one of the shopper's designs, as PNG."""
        png = studio.png(me, design_id)
        if png is None:
            raise HTTPException(404, f"you have no design {design_id!r}")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    @r.delete("/{design_id}", status_code=204, responses=NOT_FOUND)
    def delete(me: Shopper, studio: Studio, design_id: DesignId) -> Response:
        """Delete one of the shopper's designs."""
        if not studio.delete(me, design_id):
            raise HTTPException(404, f"you have no design {design_id!r}")
        return Response(status_code=204)

    return r
