"""Error codes: how an error travels over HTTP and becomes the same class again."""

from __future__ import annotations

from artifactstore import errors


def _all_classes() -> list[type[errors.ArtifactStoreError]]:
    found: list[type[errors.ArtifactStoreError]] = []
    pending: list[type[errors.ArtifactStoreError]] = [errors.ArtifactStoreError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return found


def test_every_error_class_comes_back_from_its_code() -> None:
    classes = _all_classes()
    assert len(classes) > 20
    for kind in classes:
        assert errors.error_class(errors.error_code(kind)) is kind


def test_codes_are_snake_case_without_error() -> None:
    assert errors.error_code(errors.PackageFileNotFoundError) == "package_file_not_found"
    assert errors.error_code(errors.ConflictError) == "conflict"
    assert errors.error_code(errors.MissingBlobsError) == "missing_blobs"


def test_an_unknown_code_has_no_class() -> None:
    assert errors.error_class("unauthorized") is None
