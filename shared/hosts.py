"""The host names this machine answers to: the one place they are spelled.

Plain HTTP (an emulator, the local registry) and the tools' URLs without TLS are accepted only for these; the
settings take any loopback address for a Kafka broker (``shared.settings.is_loopback``)."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
