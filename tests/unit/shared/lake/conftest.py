"""What the lake client tests share: a transport stand-in that sends nothing over the network."""

from __future__ import annotations

from typing import Any

from azure.core.pipeline.transport import HttpTransport


class OfflineTransport(HttpTransport):  # type: ignore[misc]
    """An SDK transport whose ``send`` a test defines; opening, closing and the context do nothing."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> OfflineTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass
