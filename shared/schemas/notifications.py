"""Request and response models of notification subscriptions and their deliveries (API.md, *Notifications*)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from shared.schemas.registrations import Description
from shared.schemas.urls import check_subscription_url, context_settings

Channel = Literal["webhook", "teams"]
Event = Literal["submitted", "updated", "approved", "rejected", "deleted", "deprecated", "reactivated", "published",
                "drifted", "drift_accepted", "probe_failed"]
DeliveryStatus = Literal["pending", "delivered", "failed"]

_URL_RULES = (
    "Where deliveries are posted: an absolute `https` URL (`http` only where `ALLOW_HTTP_ENDPOINTS=true`), by the "
    "endpoint **host** rules (no `localhost`, no numeric host, no loopback, private, link-local, shared, "
    "reserved or platform address, unless its network is listed in `ALLOWED_ENDPOINT_NETWORKS`; the egress "
    "guard applies the same rules to every address the name resolves to when a delivery is sent). Its query may "
    "carry the receiver's own credential (a Teams Workflows URL's `sig`): the URL is stored as given, never "
    "logged, and shown back with every query value replaced by `redacted`.")


def _subscription_url(value: str, info: ValidationInfo) -> str:
    return check_subscription_url(value, context_settings(info))


def _events(value: list[Event]) -> list[Event]:
    return sorted(set(value), key=value.index)


SubscriptionUrl = Annotated[str, Field(max_length=2048, description=_URL_RULES,
                                       examples=["https://hooks.contoso.com/registry"]),
                            AfterValidator(_subscription_url)]
Events = Annotated[list[Event], Field(min_length=1, max_length=11, description=(
    "The events delivered: `submitted` (Created), `updated`, `approved`, `rejected`, `deleted`, `deprecated`, "
    "`reactivated`, `published`, `drifted`, `drift_accepted`, `probe_failed`; repeats are dropped.")),
                   AfterValidator(_events)]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel = Field(description="`webhook`: Standard Webhooks, signed; `teams`: an Adaptive Card posted "
                                         "to a Teams Workflows webhook URL.")
    url: SubscriptionUrl
    events: Events
    description: Description = None


class SubscriptionUpdate(BaseModel):
    """Any subset of the fields; the channel and the secret never change."""

    model_config = ConfigDict(extra="forbid")

    url: SubscriptionUrl | None = None
    events: Events | None = None
    description: Description = None


class SubscriptionPublic(BaseModel):
    subscription_id: UUID
    channel: Channel
    url: str = Field(description="The URL with every query value replaced by `redacted`.")
    events: list[Event]
    description: str | None
    created_by: UUID
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionPublic):
    secret: str | None = Field(description=(
        "The Standard Webhooks signing secret (`whsec_` + base64 of 32 random bytes), shown this once; null for "
        "Teams. Verify `webhook-signature` with it (docs/notifications.md)."))


class SubscriptionList(BaseModel):
    results: list[SubscriptionPublic] = Field(description="Oldest first.")


class DeliveryPublic(BaseModel):
    delivery_id: int
    event: str = Field(description="The event name, or `test` for a test delivery.")
    webhook_id: str = Field(description="The `webhook-id` sent: the same on every attempt.")
    status: DeliveryStatus = Field(description=(
        "`pending` (not yet answered 2xx, retried with backoff), `delivered`, or `failed` (retries ran out "
        "after about three days, or the subscription was deleted)."))
    attempt: int = Field(description="Attempts made so far.")
    status_code: int | None = Field(description="The receiver's HTTP status at the last attempt.")
    error: str | None = Field(description="Why the last attempt failed.")
    created_at: datetime
    attempted_at: datetime | None
    due_at: datetime = Field(description="When the next attempt is due (while `pending`).")


class DeliveryList(BaseModel):
    results: list[DeliveryPublic] = Field(description="Newest first, at most 100.")
