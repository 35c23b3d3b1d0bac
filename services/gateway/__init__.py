"""HTTP gateway: REST API, SSE, the OBS overlay and the admin page."""
