"""The client of a running artifactstore server: `artifactstore.connect(url, token)`.

`store.RemoteStore` has ArtifactStore's methods over the /v1 API; `transport` speaks HTTP
(one httpx client, retries, errors as library errors), `reading` resolves references and
checks manifests, `download` streams and resumes a file, `upload` sends the blobs a push
needs, `checking` is verify on the client, `events` tails the log, `values` turns JSON back
into the library's values.
"""
