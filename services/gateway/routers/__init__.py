"""One router per file; :func:`services.gateway.app.create_app` includes them."""
