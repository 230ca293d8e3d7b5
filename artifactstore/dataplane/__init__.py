"""The data plane: blob operations by content address (`spi`) and their in-process form (`inproc`).

The store talks to blobs through `dataplane.spi.DataPlane` only; it never sees storage keys.
"""
