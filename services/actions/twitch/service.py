"""Wiring the Twitch actions into ``owc actions``: the token, the Helix client, the prediction loop."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import redis

from services.actions.twitch.helix import Helix
from services.actions.twitch.markers import MarkerAction
from services.actions.twitch.predictions import PredictionAction, Predictions
from services.actions.twitch.tokens import TokenError, TokenManager
from services.common.config.sections_twitch import TwitchSettings
from services.common.config.settings import under_home
from services.common.contracts.keys import Keys
from services.common.contracts.twitch_records import PredictionRecord, TwitchStatus, request_json

if TYPE_CHECKING:
    from services.actions.chat import ChatBot
    from services.actions.delivery import Action

log = logging.getLogger("owc.actions.twitch")


def _status_writer(client: redis.Redis, keys: Keys) -> tuple[
        Callable[[str, str, str], None], Callable[[str, str], None]]:
    def token_state(state: str, login: str, message: str) -> None:
        with contextlib.suppress(redis.RedisError):  # the admin page's row only; the log said it
            client.hset(keys.twitch_status, mapping={"token": state, "login": login, "message": message,
                                                     "updated_at": int(time.time() * 1000)})

    def marker_state(state: str, message: str) -> None:
        with contextlib.suppress(redis.RedisError):  # the admin page's row only; the log said it
            client.hset(keys.twitch_status, mapping={"markers": state, "markers_message": message})

    return token_state, marker_state


def predict_hook(client: redis.Redis, keys: Keys, channel: str) -> Callable[[str], str]:
    """``!predict`` from a moderator: queue an open request (the loop opens it), answer in one line."""
    def hook(user: str) -> str:
        rec = PredictionRecord.from_json(client.get(keys.twitch_prediction(channel)))
        if rec is not None and rec.active:
            return "a prediction is already running"
        client.lpush(keys.twitch_requests, request_json("open", channel, f"chat: {user}"))
        return "opening a prediction"
    return hook


def start_twitch(s: TwitchSettings, client: redis.Redis, keys: Keys, stop: threading.Event,
                 bot: ChatBot | None = None) -> list[Action]:
    """The Twitch actions (markers, predictions) and the prediction loop's thread, started."""
    token_state, marker_state = _status_writer(client, keys)
    http = httpx.Client(follow_redirects=False)
    needed = [sc for sc, on in (("channel:manage:predictions", s.predictions),
                                ("channel:manage:broadcast", s.markers)) if on]
    tokens = TokenManager(s, under_home(s.token_file), http, needed, on_state=token_state)
    helix = Helix(s, tokens, http, sleep=stop.wait)
    try:
        who = tokens.current()
        log.info("twitch: signed in as %s", who.login)
    except TokenError:
        pass  # said once, red on the admin page; the actions dead-letter until a new login
    except ConnectionError as exc:
        log.warning("twitch: %s; trying again with the first action", exc)
    actions: list[Action] = []
    if s.markers:
        actions.append(MarkerAction(helix, s.counter_channel, marker_state))
    if s.predictions:
        predictions = Predictions(client, keys, s, helix, bot.say if bot is not None else None, stop)
        actions.append(PredictionAction(predictions))
        threading.Thread(target=predictions.run, args=(stop,), name="twitch-predictions", daemon=True).start()
        if bot is not None:
            bot.predict_hook = predict_hook(client, keys, s.counter_channel)
    return actions



def status_lines(client: redis.Redis, keys: Keys, channel: str) -> list[str]:
    """``owc actions status``: the sign-in and the current prediction, one line each."""
    st = TwitchStatus.from_fields(client.hgetall(keys.twitch_status))
    lines = [f"twitch sign-in: {st.token or 'not checked yet'}" + (f" ({st.message})" if st.message else "")]
    if st.markers == "offline":
        lines.append(f"twitch markers: {st.markers_message}")
    rec = PredictionRecord.from_json(client.get(keys.twitch_prediction(channel)))
    if rec is None:
        lines.append("twitch prediction: none yet")
    else:
        extra = f": {rec.winner or rec.result}" if rec.winner or rec.result else ""
        lines.append(f"twitch prediction: {rec.shown_status(int(time.time() * 1000))} “{rec.title}”{extra}"
                     f" (id {rec.id or '-'}, opened by {rec.by})")
    return lines
