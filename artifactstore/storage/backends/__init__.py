"""StorageBackend implementations, one module each; reach them through `storage.catalog`."""
