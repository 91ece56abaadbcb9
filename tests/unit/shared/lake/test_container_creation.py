"""Opening the SDK lakes creates their container (file system) only when it is absent.

In Azure, Terraform creates the lake's file system and the app's data role is on that container only: enough to
check that it exists, not to create one (an account-level right). So a store that opens an existing container must
never ask to create it; Azurite's starts missing and is created; another instance creating it between the check
and the create is success. The stand-ins below answer like the Blob endpoint.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError

from shared.errors import LakeError
from shared.lake.adls import AdlsLake
from shared.lake.blob import BlobLake


def _refused(status: int, code: str, error_type: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    error = error_type(message=code)
    error.status_code, error.error_code, error.reason = status, code, code
    return error


# What Create Container answers a role scoped to one container: the right is on the account.
NOT_PERMITTED = (403, "AuthorizationPermissionMismatch")


class _Container:
    """The Blob endpoint's container client, as far as opening a store uses it."""

    container_name = "lake"

    def __init__(self, exists: bool, create_fails: tuple[int, str] | None = None) -> None:
        self.present = exists
        self.create_fails = create_fails
        self.calls: list[str] = []

    def exists(self, **_: Any) -> bool:
        self.calls.append("exists")
        return self.present

    def create_container(self, **_: Any) -> None:
        self.calls.append("create")
        if self.create_fails is not None:
            status, code = self.create_fails
            raise _refused(status, code, ResourceExistsError if status == 409 else HttpResponseError)
        self.present = True


class _FileSystem:
    """The Data Lake client: creating through it would need the account-level right too."""

    file_system_name = "lake"

    def __init__(self) -> None:
        self.created = False

    def create_file_system(self, **_: Any) -> None:
        self.created = True
        raise _refused(*NOT_PERMITTED)


def _open(kind: str, container: _Container) -> Any:
    if kind == "adls":
        file_system = _FileSystem()
        store = AdlsLake(file_system, container)  # type: ignore[arg-type]
        assert not file_system.created, "the file system was asked to be created"
        return store
    return BlobLake(container)  # type: ignore[arg-type]


STORES = pytest.mark.parametrize("kind", ["adls", "blob"])


@STORES
def test_an_existing_container_is_opened_without_a_create(kind: str) -> None:
    """What the app meets in Azure: the container exists and a create would be refused (403)."""
    container = _Container(exists=True, create_fails=NOT_PERMITTED)
    _open(kind, container)
    assert container.calls == ["exists"]


@STORES
def test_a_missing_container_is_created(kind: str) -> None:
    """Azurite and new local lakes: nothing exists yet."""
    container = _Container(exists=False)
    _open(kind, container)
    assert container.calls == ["exists", "create"] and container.present


@STORES
@pytest.mark.parametrize("code", ["ContainerAlreadyExists", "FilesystemAlreadyExists"])
def test_a_container_another_instance_created_after_the_check_is_success(kind: str, code: str) -> None:
    container = _Container(exists=False, create_fails=(409, code))
    _open(kind, container)
    assert container.calls == ["exists", "create"]


@STORES
@pytest.mark.parametrize(
    "failure", [(409, "ContainerBeingDeleted"), NOT_PERMITTED], ids=["being deleted", "not permitted"]
)
def test_a_missing_container_that_cannot_be_created_is_an_error(kind: str, failure: tuple[int, str]) -> None:
    with pytest.raises(LakeError, match=str(failure[0])):
        _open(kind, _Container(exists=False, create_fails=failure))


@STORES
def test_a_check_that_fails_is_an_error_not_a_create(kind: str) -> None:
    class _Unreadable(_Container):
        def exists(self, **_: Any) -> bool:
            self.calls.append("exists")
            raise _refused(*NOT_PERMITTED)

    container = _Unreadable(exists=True)
    with pytest.raises(LakeError, match="403"):
        _open(kind, container)
    assert container.calls == ["exists"]
