"""The real-OBS harness for e2e tests (implemented in ``tools.headless_obs``,
because ``owc bench capture`` starts the same headless OBS)."""

from tools.headless_obs import (
    IMAGE,
    MISSING_REASON,
    SCENE,
    VIDEO,
    ObsInstance,
    ObsStartError,
    obs_available,
)

__all__ = ["IMAGE", "MISSING_REASON", "SCENE", "VIDEO", "ObsInstance", "ObsStartError", "obs_available"]
