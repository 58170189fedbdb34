"""Accounts and bearer tokens.

A token is 32 random bytes from `secrets`, shown once when issued; the database keeps only its
SHA-256, so a leaked database gives no one a way in. Shoppers are dataset users and get a token
from an admin (`POST /admin/shoppers`, or `modiste serve --issue-token USER`); issuing again
replaces the old token. The first start creates the admin account and prints its token once
(`modiste serve --reset-admin-token` prints a new one).

Routes depend on `shopper` or `admin`: a missing or unknown token is a 401, the wrong role a 403.
A shopper's routes are all under /me, so no shopper URL names another shopper.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

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


_bearer = HTTPBearer(auto_error=False, description="a shopper's or the admin's token")


def account(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Account:
    if credentials is None:
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    db: Database = request.app.state.services.db
    with db.read() as s:
        found = s.scalar(select(Account).where(Account.token_hash == hash_token(credentials.credentials)))
    if found is None:
        raise HTTPException(401, "unknown or replaced token", headers={"WWW-Authenticate": "Bearer"})
    return found


def shopper(found: Annotated[Account, Depends(account)]) -> Account:
    if found.role != "shopper":
        raise HTTPException(403, "this route is for shoppers: use a shopper's token")
    return found


def admin(found: Annotated[Account, Depends(account)]) -> Account:
    if found.role != "admin":
        raise HTTPException(403, "this route is for the admin: use the admin token")
    return found


Shopper = Annotated[Account, Depends(shopper)]
Admin = Annotated[Account, Depends(admin)]
