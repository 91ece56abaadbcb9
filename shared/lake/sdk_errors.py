"""Azure SDK errors converted to the project's own at the lake's edge."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.errors import LakeError, LakeRefused, LakeUnavailable

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Storage answers a missing or removed data role with 403 (AuthorizationPermissionMismatch, AuthorizationFailure), which
# the SDKs raise as a bare HttpResponseError (only AuthenticationFailed becomes ClientAuthenticationError): the lake
# refuses the app, never one file. An ACL denying one path on ADLS is refused the same way: the partition waits.
NOT_AUTHORISED_STATUS = frozenset({401, 403})
# What the SDKs raise when a conditional write finds the target changed, created or gone.
CONDITION_FAILED = (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError)
# The codes of those answers that mean another writer got there first: the ETag moved (412), the file appeared
# (409, "only if absent") or went (404, "only if at this version"). The same exceptions carry other codes that no
# race gives (a container being deleted, an immutability policy): those must not be retried as a race for ever.
_RACE_CODES = frozenset({"ConditionNotMet", "BlobAlreadyExists", "PathAlreadyExists", "BlobNotFound", "PathNotFound"})
# 404s that mean the container (an ADLS file system) itself is gone, never "no such file": on the Blob and the
# Data Lake endpoint, and as Azurite and the fake DFS server of tests/lake answer.
_CONTAINER_GONE = frozenset({"ContainerNotFound", "FilesystemNotFound"})


def container_gone(error: BaseException) -> bool:
    """Whether ``error`` says the lake's container is not there (deleted under the app, or never created)."""
    return isinstance(error, ResourceNotFoundError) and getattr(error, "error_code", None) in _CONTAINER_GONE


def lost_race(error: BaseException) -> bool:
    """Whether a conditional write's ``CONDITION_FAILED`` error says another writer got there first (an answer
    without a code, as some emulators give, is read as the race its exception type names)."""
    code = getattr(error, "error_code", None)
    return isinstance(error, CONDITION_FAILED) and (code is None or code in _RACE_CODES)


def write_conditions(version: str | None) -> dict[str, Any]:
    """SDK keyword arguments for "only if still at ``version``" (an ETag), or "only if absent" for None."""
    if version is None:
        return {"match_condition": MatchConditions.IfMissing}
    return {"etag": version, "match_condition": MatchConditions.IfNotModified}


def download_versioned(name: str, download: Callable[[], Any]) -> tuple[bytes, str] | None:
    """``download()``'s bytes and ETag, ``None`` when there is no such file: how every SDK store reads a version."""
    with lake_errors(f"read {name}"):
        try:
            downloaded = download()
        except ResourceNotFoundError as error:
            if container_gone(error):
                raise
            return None
        return bytes(downloaded.readall()), str(downloaded.properties.etag)


@contextmanager
def lake_errors(action: str) -> Iterator[None]:
    """Run an SDK call; unreachable, throttled or cut off becomes ``LakeUnavailable``; a container that is gone
    or an app that is not authorised ``LakeRefused``; the rest ``LakeError``.

    A transfer that broke off is an outage, not the service's answer: the SDKs report a body cut short or garbled
    as ``DecodeError`` (``IncompleteReadError``), and the blob downloader, once its own tries at a body are spent,
    as a bare ``HttpResponseError`` carrying no response, so no status.
    """
    try:
        yield
    except ResourceNotFoundError as error:
        if container_gone(error):
            code = getattr(error, "error_code", None)
            raise LakeRefused(f"{action}: the lake's container is not there ({code})") from error
        raise LakeError(f"{action}: not found") from error
    except ClientAuthenticationError as error:
        raise LakeRefused(f"{action}: not authorised ({error.reason})") from error
    except DecodeError as error:
        raise LakeUnavailable(f"{action}: the answer broke off ({error.message})") from error
    except HttpResponseError as error:
        if error.status_code is None:
            raise LakeUnavailable(f"{action}: no answer ({error.message})") from error
        if error.status_code in TRANSIENT_STATUS:
            raise LakeUnavailable(f"{action}: HTTP {error.status_code} {error.reason}") from error
        if error.status_code in NOT_AUTHORISED_STATUS:  # AuthorizationPermissionMismatch: a data role removed
            code = getattr(error, "error_code", None)
            raise LakeRefused(f"{action}: not authorised (HTTP {error.status_code} {code or error.reason})") from error
        raise LakeError(f"{action}: HTTP {error.status_code} {error.reason}") from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise LakeUnavailable(f"{action}: {error}") from error
    except AzureError as error:
        raise LakeUnavailable(f"{action}: {error}") from error
