"""Signals the token realm sends, so that ``jwt_auth`` never imports the apps above it."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``project=`` and ``name=`` (the repository path below the project, "" for the
# root image) whenever a token grants ``push``: the registry app makes sure the container
# repository row exists. An error a receiver raises fails the token request.
push_granted = Signal()
