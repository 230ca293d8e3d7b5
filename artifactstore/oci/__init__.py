"""Packages in the OCI world: image layouts out and in, and the image /v2 serves (ADR-0013).

`layout` is the pure recipe (the image manifest, index and layout files of a package, and a
layout read back); `export` writes a package as a layout, `import_` publishes a layout as a
package, and `packages` is the face `ArtifactStore.oci` gives over them.
"""
