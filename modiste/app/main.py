"""`create_app(settings)`: the FastAPI app over one dataset, its runs and its database."""

from __future__ import annotations

from contextlib import asynccontextmanager

import faiss
import torch
from fastapi import FastAPI

import modiste
from modiste.app import errors
from modiste.app.auth import TokenCache
from modiste.app.catalogue import Catalogue, Histories
from modiste.app.db import Database
from modiste.app.designs import open_studio
from modiste.app.outfits import Outfits
from modiste.app.recommend import FactorRecommender
from modiste.app.routes import admin, catalogue, designs, me, web
from modiste.app.schemas import DatasetSchemas
from modiste.app.services import Services
from modiste.app.settings import Settings
from modiste.app.shoppers import ShopperStates
from modiste.app.textsearch import text_matcher
from modiste.data import Dataset


def build_services(settings: Settings) -> Services:
    """Open the dataset (checked), migrate the database, load the runs: every problem shows here, at start."""
    torch.set_num_threads(settings.threads)
    faiss.omp_set_num_threads(settings.threads)
    ds = Dataset(settings.data).validate()
    db = Database(settings.db_url)
    db.upgrade()
    cat = Catalogue(ds, text_matcher(ds, settings.search))
    recommender = FactorRecommender(settings.rec_run, ds, settings.index) if settings.rec_run else None
    services = Services(
        settings=settings, ds=ds, db=db, catalogue=cat, histories=Histories(ds),
        schemas=DatasetSchemas(cat.categories, cat.attributes), recommender=recommender,
        outfits=Outfits(settings.outfit_run, ds) if settings.outfit_run else None,
        tokens=TokenCache(db, settings.token_cache_seconds), shoppers=ShopperStates(db, cat, recommender),
        designs=open_studio(settings, ds, db),
    )
    services.reload_hidden()
    return services


def create_app(settings: Settings) -> FastAPI:
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        services.db.close()

    app = FastAPI(title="modiste", version=modiste.__version__, lifespan=lifespan,
                  description=f"Personalized fashion recommendation over the dataset '{services.ds.name}'. "
                              "Shoppers use /me with their bearer token; the admin uses /admin.")
    app.state.services = services
    errors.install(app, settings.max_body_bytes)
    for module in (catalogue, me, designs, admin, web):
        app.include_router(module.router(services.schemas))
    return app
