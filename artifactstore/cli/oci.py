"""The OCI commands: export-oci (a package out as an OCI image layout) and import-oci (in)."""

from __future__ import annotations

import click

from artifactstore.cli import output
from artifactstore.cli.completion import package_argument
from artifactstore.cli.context import (
    CliState,
    open_local_store,
    package_args,
    pass_state,
    retention_option,
)


@click.command("export-oci")
@package_argument("NAME VERSION DIR", files=True)
@pass_state
@click.pass_context
def export_oci(ctx: click.Context, state: CliState, args: tuple[str, ...]) -> None:
    """Write a finalized package as an OCI image layout in DIR; print its OCI manifest digest.

    DIR must be missing or empty; it is filled whole or not at all. The image is an OCI
    artifact (artifactType application/vnd.artifactstore.package.v1): one layer per file,
    titled with its path (org.opencontainers.image.title, as oras names files) and annotated
    dev.artifactstore.file.executable=true when executable; the config blob is the package's
    canonical manifest. The version is the tag (org.opencontainers.image.ref.name). File
    blobs are hard links to the store's own (read-only) blob files where the store keeps them
    on the same filesystem, else verified copies; no SHA-256 is computed again. `skopeo copy
    oci:DIR:VERSION ...` and `oras copy --from-oci-layout DIR:VERSION ...` read it. --json
    adds the package's manifest digest and the counts.

    \b
    Example:
      artifactstore export-oci acme/app 1.4.2 app-oci/
      artifactstore --json export-oci acme/app:1.4.2 app-oci/
    """
    ref, (directory,) = package_args(args, ("DIR",))
    image = open_local_store(ctx).oci.export(ref, directory)
    if state.as_json:
        output.emit_json(
            {
                "bytes": sum(f.size for f in image.files),
                "digest": image.digest,
                "directory": directory,
                "files": len(image.files),
                "manifest_digest": image.package_digest,
            }
        )
    else:
        click.echo(image.digest)


@click.command("import-oci")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.argument("name")
@click.argument("version")
@retention_option
@pass_state
@click.pass_context
def import_oci(
    ctx: click.Context,
    state: CliState,
    directory: str,
    name: str,
    version: str,
    retention_class: str,
) -> None:
    """Publish the OCI image layout in DIR as package NAME VERSION, atomically, as a push.

    DIR holds an image layout (oci-layout, index.json, blobs/sha256/): one written by
    export-oci, `oras push --oci-layout` or `skopeo copy ... oci:DIR`. The image is the
    index's one manifest, or the one tagged VERSION. Each layer titled with a path
    (org.opencontainers.image.title) becomes that file, executable if annotated
    dev.artifactstore.file.executable=true; layers without a title are skipped, as oras
    skips them. Every blob's SHA-256 is checked as it is stored: a blob that does not match
    its digest exits 1, and a layout that cannot be read (no index, a missing blob, a path a
    package cannot hold) exits 2, with nothing published either way. Prints the manifest
    digest, as push does; importing the same files again changes nothing.

    \b
    Example:
      artifactstore import-oci app-oci/ acme/app 1.4.2 --retention ci
    """
    store = open_local_store(ctx, create=True)
    result = store.oci.import_layout(directory, name, version, retention_class)
    output.pushed(result, state.as_json)


COMMANDS = (export_oci, import_oci)
