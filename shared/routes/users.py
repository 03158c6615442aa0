"""/api/users: the signed-in caller's own row, and any row for administrators."""

from __future__ import annotations

import uuid

import azure.functions as func

from shared.auth import require_user, sign_in
from shared.db import database
from shared.errors import Forbidden, NotFound
from shared.http import endpoint, json_response
from shared.schemas.users import UserPublic
from shared.services import users

blueprint = func.Blueprint()


@blueprint.route(route="users", methods=["POST"])
@endpoint
async def users_sign_in(req: func.HttpRequest) -> func.HttpResponse:
    _, row, created = await sign_in(req)
    return json_response(UserPublic.model_validate(row), 201 if created else 200)


@blueprint.route(route="users/me", methods=["GET"])
@endpoint
async def users_get_me(req: func.HttpRequest) -> func.HttpResponse:
    _, row, _ = await sign_in(req)
    return json_response(UserPublic.model_validate(row))


@blueprint.route(route="users/{user_id:guid}", methods=["GET"])
@endpoint
async def users_get(req: func.HttpRequest) -> func.HttpResponse:
    caller = await require_user(req)
    try:
        user_id = uuid.UUID(req.route_params.get("user_id", ""))
    except ValueError:
        raise NotFound("No user has this id.") from None
    if not caller.is_admin and user_id != caller.user_id:
        raise Forbidden("Only administrators may read another user.")
    row = await users.get_user(db=database, user_id=user_id)
    if row is None:
        raise NotFound("No user has this id.")
    return json_response(UserPublic.model_validate(row))
