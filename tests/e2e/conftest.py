"""Fixtures shared by the e2e modules."""

from tests.support.obs import replay_obs

__all__ = ["replay_obs"]
