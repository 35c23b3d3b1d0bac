"""Twitch through its Helix API: sign-in (device code flow), predictions and stream markers."""
