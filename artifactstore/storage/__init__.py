"""Blob storage: the backend SPI (`spi`), the backends (`backends`) and lookup by id (`registry`).

Code above the data plane depends on `storage.spi` only; `storage.backends` is imported by
`storage.catalog` and `dataplane` alone, which a test enforces.
"""
