"""The event log: the source of truth, and the views folded from it.

`model` holds events as values and the chain digest; `log` appends, reads, follows and
verifies; `views` applies events to the view tables;
`replay` rebuilds them from the whole log.
"""
