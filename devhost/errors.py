"""The local host's own exceptions: every error it raises on purpose is a ``DevHostError``."""


class DevHostError(Exception):
    """Base of every error the local host raises on purpose (settings, indexing, services, entities)."""
