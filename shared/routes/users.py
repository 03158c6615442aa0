"""/api/users: the signed-in caller's own row, and any row for administrators."""

from __future__ import annotations

import azure.functions as func

from shared import policy, texts
from shared.db import database
from shared.declare import Answer, Routes, SignedIn
from shared.errors import Forbidden, NotFound
from shared.http import json_response
from shared.schemas.users import UserPublic
from shared.services import users

routes = Routes("users")
blueprint = routes.blueprint

NO_SUCH_USER = texts.UNKNOWN_ID["user_id"]


@routes.declare(
    "POST", "users", access="user", summary="Sign in: create or refresh the caller's user",
    answers=(Answer(201, "The caller's user was created.", UserPublic),
             Answer(200, "The caller's user existed; its name, e-mail and `is_admin` were refreshed from the token.",
                    UserPublic)),
    description="Takes no body: everything comes from the token. `is_admin` follows the token on every call.",
)
async def users_sign_in(call: SignedIn[None, None]) -> func.HttpResponse:
    return json_response(UserPublic.model_validate(call.account), 201 if call.created else 200)


@routes.declare(
    "GET", "users/me", access="user", summary="The caller's own user",
    answers=(Answer(200, "The caller's user (created on first use).", UserPublic),),
)
async def users_get_me(call: SignedIn[None, None]) -> func.HttpResponse:
    return json_response(UserPublic.model_validate(call.account))


@routes.declare(
    "GET", "users/{user_id:guid}", access="user", summary="One user, for administrators or that user",
    answers=(Answer(200, "The user.", UserPublic),),
    errors={403: "The caller is neither an administrator nor this user.", 404: NO_SUCH_USER},
)
async def users_get(call: SignedIn[None, None]) -> func.HttpResponse:
    user_id = call.path_id("user_id")
    if not policy.may_read_user(call.actor, user_id):
        raise Forbidden("Only administrators may read another user.")
    row = await users.get_user(db=database, user_id=user_id)
    if row is None:
        raise NotFound(NO_SUCH_USER)
    return json_response(UserPublic.model_validate(row))
