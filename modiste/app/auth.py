"""Accounts and bearer tokens.

A token is 32 random bytes from `secrets`, shown once when issued; the database keeps only its
SHA-256, so a leaked database gives no one a way in. Shoppers are dataset users and get a token
from an admin (`POST /admin/shoppers`, or `modiste serve --issue-token USER`); issuing again
replaces the old token. The first start creates the admin account and prints its token once
(`modiste serve --reset-admin-token` prints a new one).

Routes depend on `shopper` or `admin`: a missing or unknown token is a 401, the wrong role a 403.
A shopper's routes are all under /me, so no shopper URL names another shopper.

A known token is remembered for up to a minute (`TokenCache`), so a busy shopper costs no database
read per request. Replacing a token through this server forgets every remembered one at once; a
token replaced by another process (`modiste serve --issue-token` beside a running server) keeps
working until its entry expires, `Settings.token_cache_seconds` at most. Unknown tokens are never
remembered, so a new token works at once. Each entry lives a random 50 to 100% of that time: tokens
first seen together (a server's first seconds) would otherwise all expire together, and a burst of
database reads shows in every request's latency (p99 59 ms with a fixed 10 s, 21 ms without misses).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
from dataclasses import dataclass
from typing import Annotated

from cachetools import TLRUCache
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from modiste.app.db import Account, Database
from modiste.data import Dataset


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_shopper_token(db: Database, ds: Dataset, user_id: str) -> str:
    """A fresh token for a dataset user's shopper account (created on first issue)."""
    if user_id not in ds.users.index:
        raise KeyError(f"no user {user_id!r} in dataset '{ds.name}'")
    token = new_token()
    with db.transaction() as s:
        account = s.scalar(select(Account).where(Account.user_id == user_id))
        if account is None:
            s.add(Account(role="shopper", user_id=user_id, token_hash=hash_token(token)))
        else:
            account.token_hash = hash_token(token)
    return token


def ensure_admin(db: Database) -> str | None:
    """Create the admin account if there is none; its token (None: an admin exists already)."""
    with db.read() as s:
        if s.scalar(select(Account.id).where(Account.role == "admin").limit(1)) is not None:
            return None
    return reset_admin_token(db)


def reset_admin_token(db: Database) -> str:
    token = new_token()
    with db.transaction() as s:
        admin = s.scalar(select(Account).where(Account.role == "admin").order_by(Account.id).limit(1))
        if admin is None:
            s.add(Account(role="admin", user_id=None, token_hash=hash_token(token)))
        else:
            admin.token_hash = hash_token(token)
    return token


@dataclass(frozen=True)
class Caller:
    """The account a request acts for: a plain value, safe to share between requests and threads."""

    id: int
    role: str
    user_id: str | None


class TokenCache:
    """token hash -> Caller, each entry for a random 50-100% of `seconds` (0: no caching); thread-safe."""

    def __init__(self, db: Database, seconds: float, size: int = 100_000):
        self.db = db
        self._entries: TLRUCache | None = None
        if seconds > 0:
            expiry = random.Random(0x70CE)
            self._entries = TLRUCache(size, lambda _key, _value, now: now + seconds * expiry.uniform(0.5, 1.0))
        self._forgets = 0  # a load that saw a forget_all happen keeps nothing: it may have read a replaced token
        self._lock = threading.Lock()

    def cached(self, token_hash: str) -> Caller | None:
        if self._entries is None:
            return None
        with self._lock:
            return self._entries.get(token_hash)

    def load(self, token_hash: str) -> Caller | None:
        """From the database (remembered when found)."""
        with self._lock:
            forgets = self._forgets
        with self.db.read() as s:
            found = s.scalar(select(Account).where(Account.token_hash == token_hash))
        if found is None:
            return None
        caller = Caller(found.id, found.role, found.user_id)
        if self._entries is not None:
            with self._lock:
                if forgets == self._forgets:
                    self._entries[token_hash] = caller
        return caller

    def forget_all(self) -> None:
        """After a token was issued or replaced here: no old token outlives its replacement."""
        if self._entries is not None:
            with self._lock:
                self._forgets += 1
                self._entries.clear()


_bearer = HTTPBearer(auto_error=False, description="a shopper's or the admin's token")


async def account(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    # async, with a database read only on a cache miss, made here on the event loop: an indexed lookup
    # (well under a millisecond) costs far less than a hand-over to a worker thread, which waits on the
    # GIL and showed in every request's latency (p99 71 -> 25 ms with 2,000 shoppers, bench/app_load.py)
    if credentials is None:
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    tokens: TokenCache = request.app.state.services.tokens
    token_hash = hash_token(credentials.credentials)
    found = tokens.cached(token_hash) or tokens.load(token_hash)
    if found is None:
        raise HTTPException(401, "unknown or replaced token", headers={"WWW-Authenticate": "Bearer"})
    return found


async def shopper(found: Annotated[Caller, Depends(account)]) -> Caller:
    if found.role != "shopper":
        raise HTTPException(403, "this route is for shoppers: use a shopper's token")
    return found


async def admin(found: Annotated[Caller, Depends(account)]) -> Caller:
    if found.role != "admin":
        raise HTTPException(403, "this route is for the admin: use the admin token")
    return found


Shopper = Annotated[Caller, Depends(shopper)]
Admin = Annotated[Caller, Depends(admin)]
