"""``owc actions twitch-login``: Twitch's device code flow, the token saved in the data folder (0600)."""

from __future__ import annotations

import argparse

import httpx

from services.actions.twitch.tokens import TokenError, TokenManager, poll_device_flow, save_token, start_device_flow
from services.common.cli.cliargs import fail, load_from_args
from services.common.config.sections_twitch import TWITCH_SCOPES
from services.common.config.settings import under_home


def run_login(args: argparse.Namespace) -> int:
    s = load_from_args(args).settings.actions.twitch
    if not s.client_id:
        fail("set actions.twitch.client_id first: the Client ID of your Twitch application "
             "(dev.twitch.tv/console, client type Public; see docs/actions.md)")
    path = under_home(s.token_file)
    with httpx.Client(timeout=s.timeout_s, follow_redirects=False) as http:
        try:
            code = start_device_flow(http, s)
            print(f"Open {code.verification_uri} and enter the code {code.user_code}")
            print(f"(asking for: {' '.join(TWITCH_SCOPES)}; waiting up to {code.expires_in / 60:.0f} min)",
                  flush=True)
            token = poll_device_flow(http, s, code)
            save_token(path, token)
            manager = TokenManager(s, path, http)
            checked = manager.current()  # validates: the user, the scopes
        except TokenError as exc:
            fail(str(exc))
        except (httpx.HTTPError, ConnectionError) as exc:
            fail(f"Twitch's sign-in server did not answer ({type(exc).__name__}); try again")
        except KeyboardInterrupt:
            fail("sign-in cancelled; nothing was saved")
    print(f"signed in as {checked.login}; token saved in {path} (readable by you only). "
          "`owc actions` refreshes it before it expires.")
    return 0
