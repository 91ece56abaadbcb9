"""The project's own exceptions. SDK errors are converted to these at the edge."""


class StreamingPocError(Exception):
    """Base of every error this project raises on purpose."""


class TransientError(StreamingPocError):
    """A dependency (storage, broker) is unavailable; the trigger's retry policy redelivers."""


class LakeUnavailable(TransientError):
    """The lake could not be reached or refused the write for a reason that may pass."""


class WriteConflict(TransientError):
    """A conditional lake write lost to another writer: reload what changed and retry."""


class LakeError(StreamingPocError):
    """The lake rejected a request for a reason retrying will not fix (bad path, no permission)."""


class LakeRefused(LakeError):
    """The lake refuses this app as a whole (its container is gone, the app is not authorised): no one file is at
    fault, so nothing may be taken for absent or unreadable because of it; the partition waits, loudly."""


class UnsafePath(LakeError):
    """A path would escape the lake root or contains a segment that is not allowed."""


class UnreadableLakeFile(LakeError):
    """A lake file is not what its name says (truncated, another format, rows without the expected columns)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path


class ConfigurationError(StreamingPocError):
    """App settings are missing or contradict each other."""


class RecordRejected(StreamingPocError):
    """One record's own problem (a key no entity can take, a query for no valid key): never retried.

    Processing turns it into a dead letter with its reason; the rest of the batch goes on.
    """


class StateBackendError(StreamingPocError):
    """The entity API refused every request (not authorised, no such entity function): waits, loudly."""


class RegistryUnavailable(TransientError):
    """The schema registry did not answer (connection, timeout, 5xx): the batch waits and retries."""


class RegistryRefused(ConfigurationError):
    """The schema registry refuses this app (401/403, a URL that is not a registry): waits, loudly."""


class RedriveInProgress(StreamingPocError):
    """Another redrive of the same source holds its lease (``shared.redrive``): this run sent nothing."""
