"""Everything a request handler needs, built once per app: the dataset, the catalogue, the
database, the models. Handlers get it with `Depends(services)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select

from modiste.app.auth import TokenCache
from modiste.app.catalogue import Catalogue, Histories
from modiste.app.db import Database, HiddenItem
from modiste.app.designs import DesignStudio
from modiste.app.outfits import Outfits
from modiste.app.recommend import FactorRecommender
from modiste.app.schemas import DatasetSchemas
from modiste.app.settings import Settings
from modiste.app.shoppers import ShopperStates
from modiste.data import Dataset


@dataclass
class Services:
    settings: Settings
    ds: Dataset
    db: Database
    catalogue: Catalogue
    histories: Histories
    schemas: DatasetSchemas
    recommender: FactorRecommender | None
    outfits: Outfits | None
    tokens: TokenCache
    shoppers: ShopperStates
    designs: DesignStudio | None

    def reload_hidden(self) -> None:
        """Mirror the hidden items of the database in the catalogue (one process serves the app)."""
        with self.db.read() as s:
            self.catalogue.set_hidden(s.scalars(select(HiddenItem.item_id)))

    def need_recommender(self) -> FactorRecommender:
        if self.recommender is None:
            raise HTTPException(503, "recommendations are off: start the server with --rec-run RUN")
        return self.recommender

    def need_designs(self) -> DesignStudio:
        if self.designs is None:
            raise HTTPException(503, "designs are off: start the server with --design-rec-run RUN (a DVBPR run) "
                                     "--gan-run RUN (a GAN run)")
        return self.designs

    def need_outfits(self) -> Outfits:
        if self.outfits is None:
            raise HTTPException(503, "outfits are off: start the server with --outfit-run RUN")
        return self.outfits


async def services(request: Request) -> Services:  # async: no worker thread just to read an attribute
    return request.app.state.services


Deps = Annotated[Services, Depends(services)]
