"""ASGI entry point for uvicorn and other servers: ``uvicorn server.asgi:app`` (settings from env)."""

from server.app import create_app

app = create_app()
