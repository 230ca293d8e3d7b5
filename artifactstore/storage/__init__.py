"""Blob storage: the SPI (`spi`), the backends (`backends`), their shared skeleton (`base`).

`storage.catalog` looks a backend up by id. Code above the data plane depends on `storage.spi`
only; `storage.backends` is imported by `storage.catalog` and `dataplane` alone, which a test
enforces.
"""
