"""Reads through the server: package references, and manifests the client checks itself.

A reference is what the local store takes: a Package, (name, version), 'NAME:VERSION',
'NAME@blake3:<hex>' (the version of NAME whose manifest has that digest, found by listing
NAME's versions) or a package id (found by listing every package). `resolve` turns it into
the name, version and pinned digest.

A finalized package's files come from its manifest, never from the JSON listing: the client
fetches the canonical CBOR, hashes it, and requires the digest the answer's ETag names, the
pinned or expected digest if there is one, a strict decode (`manifest.codec`), and the name
and version asked for. A server, or anything between, that changes one file entry changes the
digest, and the pinned digest (`NAME@blake3:...`, --expect-digest) catches it.
"""

from __future__ import annotations

from dataclasses import dataclass

from artifactstore.errors import (
    DigestMismatchError,
    IntegrityError,
    InvalidInputError,
    PackageNotFoundError,
)
from artifactstore.manifest import codec
from artifactstore.manifest.model import Manifest, manifest_digest_of_bytes
from artifactstore.naming import check_name, check_version, parse_package_spec
from artifactstore.records import Package, PackageRef
from artifactstore.remote.transport import Transport
from artifactstore.remote.values import field, package_from_json


@dataclass(frozen=True, slots=True)
class Located:
    """A package reference resolved: its name and version, and the digest it pins (if any)."""

    name: str
    version: str
    pin: str | None

    @property
    def route(self) -> str:
        """The API route of the version."""
        return f"/v1/packages/{self.name}/versions/{self.version}"

    @property
    def pair(self) -> tuple[str, str]:
        """(name, version), a reference that pins nothing."""
        return (self.name, self.version)

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"

    def expected(self, expect_digest: str | None) -> str | None:
        """The digest a read must find: expect_digest or the pin (which must then agree)."""
        if self.pin is not None and expect_digest is not None and self.pin != expect_digest:
            raise DigestMismatchError(
                f"{self.name}@{self.pin} pins {self.pin}, but {expect_digest} is expected"
            )
        return expect_digest or self.pin


def list_packages(
    transport: Transport, name: str | None = None, include_ended: bool = False
) -> list[Package]:
    """Every package the token may see, or every version of name, sorted by name and version
    (ended ones only with include_ended)."""
    params = {} if name is None else {"name": check_name(name)}
    if include_ended:
        params["all"] = "true"
    answer = transport.call("GET", "/v1/packages", params=params)
    found = field(answer, "packages", list, "GET /v1/packages")
    return [package_from_json(item, "GET /v1/packages") for item in found]


def get_package(transport: Transport, name: str, version: str) -> Package:
    """The package (name, version) as the server has it now."""
    route = Located(check_name(name), check_version(version), None).route
    return package_from_json(transport.call("GET", route), f"GET {route}")


def resolve(transport: Transport, ref: PackageRef) -> Located:
    """The name, version and pinned digest a reference names (see the module docstring)."""
    if isinstance(ref, Package):
        return Located(ref.name, ref.version, None)
    if isinstance(ref, tuple):
        name, version = ref
        return Located(check_name(name), check_version(version), None)
    if not isinstance(ref, str):
        raise InvalidInputError(f"{ref!r} is not a package, (name, version) or text")
    if ":" in ref or "@" in ref:
        spec = parse_package_spec(ref)
        if spec.version is not None:
            return Located(spec.name, spec.version, None)
        versions = list_packages(transport, spec.name)
        for package in versions:
            if package.manifest_digest == spec.digest:
                return Located(package.name, package.version, spec.digest)
        shown = ", ".join(p.version for p in versions[:5])
        known = f"versions that exist: {shown}" if shown else f"no version of {spec.name} exists"
        raise PackageNotFoundError(f"no package {spec.name}@{spec.digest} ({known})")
    for package in list_packages(transport):
        if package.id == ref:
            return Located(package.name, package.version, None)
    raise PackageNotFoundError(f"no package with id {ref!r}")


def manifest_bytes(transport: Transport, located: Located, expected: str | None) -> bytes:
    """The manifest's canonical CBOR, checked (see the module docstring)."""
    route = f"{located.route}/manifest"
    response = transport.send("GET", route, params={"format": "cbor"})
    data = response.content
    digest = str(manifest_digest_of_bytes(data))
    etag = response.headers.get("ETag", "").removeprefix("W/").strip('"')
    if etag != digest:
        raise IntegrityError(
            f"package {located}: the server names manifest {etag or 'nothing'} (ETag) but "
            f"sent bytes with digest {digest}"
        )
    if expected is not None and digest != expected:
        raise DigestMismatchError(
            f"package {located} has manifest {digest}, not the expected {expected}"
        )
    return data


def decode(located: Located, data: bytes) -> Manifest:
    """The manifest decoded strictly; IntegrityError if it is not the one of located."""
    manifest = codec.decode(data)
    if (manifest.package.name, manifest.package.version) != (located.name, located.version):
        raise IntegrityError(
            f"the server sent the manifest of {manifest.package.name}:"
            f"{manifest.package.version} for {located}"
        )
    return manifest
