"""OBS actions against the real OBS 29 (Debian obs-studio under Xvfb) with its replay buffer running."""

from __future__ import annotations

import pytest

from tests.support.obs import ObsInstance, requires_obs
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.obs, pytest.mark.slow, requires_obs]


def test_the_harness_replay_buffer_saves_a_clip(replay_obs: ObsInstance) -> None:
    before = len(replay_obs.saved_replays())
    client = replay_obs.client()
    try:
        client.send("SaveReplayBuffer")
    finally:
        client.disconnect()
    wait_until(lambda: len(replay_obs.saved_replays()) == before + 1, timeout=10, message="a clip")
    assert replay_obs.saved_replays()[-1].stat().st_size > 1000
