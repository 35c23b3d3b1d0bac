"""The actions service from the admin page: each automation's last delivery and dead letters,
and the two things `owc actions` does on request: send the dead letters again, send a test event.

Both POSTs only queue letters on the retry list (as `owc actions retry|test` do); the running
`owc actions` sends them. They are mutations: the same guard as every change (same origin,
JSON, admin token).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam

from services.common.contracts.action_records import ActionInfo, configured_actions, known_actions, service_running
from services.common.contracts.health import ActionsHealth
from services.common.contracts.twitch_records import PredictionRecord, RequestOp, TwitchStatus, request_json
from services.gateway.deps import RuntimeDep, StoreDep
from services.gateway.errors import guarded_responses
from services.gateway.models import (
    ActionQueuedOut,
    ActionRetryIn,
    ActionsOut,
    ActionTestIn,
    TwitchOut,
    TwitchPredictionOut,
    TwitchQueuedOut,
    TwitchRequestIn,
    TwitchTokenOut,
)
from services.gateway.views import actions_out, now_ms

router = APIRouter(prefix="/api/v1/actions", tags=["actions"])

ERRORS = guarded_responses({
    404: "No action of that name is configured (or unknown channel).",
    422: "Invalid body or action name.",
    503: "Redis is not reachable; nothing was queued.",
})


async def _known(runtime: RuntimeDep) -> tuple[list[ActionInfo], ActionsHealth | None]:
    health = await runtime.store.actions_health()
    return known_actions(configured_actions(runtime.settings.actions), health.actions if health else None), health


async def known_action(
    runtime: RuntimeDep,
    name: Annotated[str, PathParam(description="The action's name (GET /api/v1/actions lists them).",
                                   pattern=r"^[A-Za-z0-9_-]{1,64}$")],
) -> tuple[str, bool]:
    """The action's name and whether the actions service is running; 404 for an unknown name."""
    known, health = await _known(runtime)
    names = [a.name for a in known]
    if name not in names:
        raise HTTPException(
            404, f"no action named {name!r} is configured (configured: {', '.join(names) or 'none'}; "
            "see docs/actions.md)"
        )
    return name, service_running(health.updated_at if health else None, now_ms())


ActionDep = Annotated[tuple[str, bool], Depends(known_action)]
NOT_RUNNING = "the actions service is not running: it sends them when it starts (`owc actions`)"


@router.get("", response_model=ActionsOut, summary="Automations: each action's last delivery and dead letters")
async def list_actions(runtime: RuntimeDep, store: StoreDep) -> ActionsOut:
    known, health = await _known(runtime)
    configured = {a.name for a in configured_actions(runtime.settings.actions)}
    records = await store.action_records([a.name for a in known])
    return actions_out(known, configured, health, records)


@router.post("/{name}/retry", response_model=ActionQueuedOut, responses=ERRORS,
             summary="Send an action's dead letters again")
async def retry(action: ActionDep, body: ActionRetryIn, store: StoreDep) -> ActionQueuedOut:
    del body  # no fields: a JSON body like every change
    name, running = action
    moved = await store.queue_action_retries(name)
    if not moved:
        detail = f"{name}: no dead letters to send again"
    else:
        detail = f"{name}: {moved} dead letter{'s' if moved != 1 else ''} queued again; " + (
            "the actions service sends them now" if running else NOT_RUNNING)
    return ActionQueuedOut(action=name, queued=moved, event_id=None, service_running=running, detail=detail)


@router.post("/{name}/test", response_model=ActionQueuedOut, responses=ERRORS,
             summary="Send a made-up victory, marked as a test, through an action")
async def send_test(action: ActionDep, body: ActionTestIn, store: StoreDep) -> ActionQueuedOut:
    name, running = action
    if not await store.channel_exists(body.channel):
        raise HTTPException(404, f"unknown channel {body.channel!r}: see GET /api/v1/channels for the known ones")
    event_id = await store.queue_action_test(name, body.channel)
    detail = f"{name}: test event queued; " + (
        "the actions service sends it now" if running else NOT_RUNNING.replace("them", "it"))
    return ActionQueuedOut(action=name, queued=1, event_id=event_id, service_running=running, detail=detail)


# ---------------------------------------------------------------- Twitch: predictions, markers, sign-in


@router.get("/twitch", response_model=TwitchOut, summary="Twitch: the sign-in, the markers and the current prediction")
async def twitch(runtime: RuntimeDep, store: StoreDep) -> TwitchOut:
    t = runtime.settings.actions.twitch
    pipe = store.r.pipeline(transaction=False)
    pipe.hgetall(store.keys.twitch_status)
    pipe.get(store.keys.twitch_prediction(t.counter_channel))
    raw_status, raw_prediction = await pipe.execute()
    status = TwitchStatus.from_fields(raw_status or {})
    rec = PredictionRecord.from_json(raw_prediction)
    now = now_ms()
    prediction = None if rec is None else TwitchPredictionOut(
        status=rec.shown_status(now), id=rec.id, title=rec.title, opened_at=rec.opened_at,
        locks_at=rec.opened_at + rec.window_s * 1000, result=rec.result, winner=rec.winner, by=rec.by,
        updated_at=rec.updated_at)
    token = TwitchTokenOut(state=status.token or "unknown", login=status.login, message=status.message,
                           ok=status.token_ok)
    return TwitchOut(enabled=t.enabled, channel=t.counter_channel, token=token, markers=status.markers,
                     markers_message=status.markers_message, prediction=prediction)


TWITCH_ERRORS = guarded_responses({
    409: "Twitch predictions are not enabled (actions.twitch), or nothing to cancel.",
    422: "Invalid body.",
    503: "Redis is not reachable; nothing was queued.",
})


async def _queue_twitch(runtime: RuntimeDep, store: StoreDep, op: RequestOp) -> TwitchQueuedOut:
    t = runtime.settings.actions.twitch
    if not (t.enabled and t.predictions):
        raise HTTPException(409, "Twitch predictions are not enabled: set actions.twitch.enabled (docs/actions.md)")
    rec = PredictionRecord.from_json(await store.r.get(store.keys.twitch_prediction(t.counter_channel)))
    if op == "cancel" and (rec is None or not rec.active):
        raise HTTPException(409, "no prediction is running")
    if op == "open" and rec is not None and rec.active:
        raise HTTPException(409, "a prediction is already running: cancel it first")
    await store.r.lpush(store.keys.twitch_requests, request_json(op, t.counter_channel, "admin"))
    health = await runtime.store.actions_health()
    running = service_running(health.updated_at if health else None, now_ms())
    verb = "cancelling the prediction (points refunded)" if op == "cancel" else "opening a prediction"
    return TwitchQueuedOut(detail=f"{verb}; " + ("the actions service does it now" if running
                                                 else NOT_RUNNING.replace("sends them", "does it")),
                           service_running=running)


@router.post("/twitch/prediction/cancel", response_model=TwitchQueuedOut, responses=TWITCH_ERRORS,
             summary="Cancel the running Twitch prediction (everyone gets their points back)")
async def cancel_prediction(runtime: RuntimeDep, store: StoreDep, body: TwitchRequestIn) -> TwitchQueuedOut:
    del body
    return await _queue_twitch(runtime, store, "cancel")


@router.post("/twitch/prediction/open", response_model=TwitchQueuedOut, responses=TWITCH_ERRORS,
             summary="Open a Twitch prediction for the next match now")
async def open_prediction(runtime: RuntimeDep, store: StoreDep, body: TwitchRequestIn) -> TwitchQueuedOut:
    del body
    return await _queue_twitch(runtime, store, "open")
