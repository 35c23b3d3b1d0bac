"""The actions service: what happens when a match ends (webhooks, Twitch chat, OBS)."""
