"""The real-OBS harness for e2e tests (implemented in ``services.capture.headless_obs``,
because ``owc bench capture`` starts the same headless OBS)."""

from services.capture.headless_obs import (
    IMAGE,
    MISSING_REASON,
    SCENE,
    VIDEO,
    ObsInstance,
    ObsStartError,
    obs_available,
)

__all__ = ["IMAGE", "MISSING_REASON", "SCENE", "VIDEO", "ObsInstance", "ObsStartError", "obs_available"]
