"""The `token` commands: the server tokens the HTTP API takes (create, list, revoke).

A secret is printed once, by `token create`, and nowhere else: not by `token list`, not in the
events, the logs or an error message. The store keeps only its SHA-256.
"""

from __future__ import annotations

import click

from artifactstore.cli import output
from artifactstore.cli.context import CliState, open_local_store, pass_state


@click.group()
def token() -> None:
    """Create, list and revoke the tokens HTTP clients authenticate with.

    A token has a scope (read < write < admin), optionally a package-name prefix it is
    confined to and an expiry. Its secret is printed once, when it is created; the store
    keeps only a hash of it. Creating and revoking are events in the log.

    \b
    Example:
      artifactstore token create ci-acme --scope write --prefix acme/ --expires-in 90d
    """


@token.command()
@click.argument("name")
@click.option(
    "--scope",
    required=True,
    type=click.Choice(["read", "write", "admin"]),
    help="What the token may do: read < write < admin.",
)
@click.option("--prefix", metavar="P", help="Only package names that begin with P (acme/).")
@click.option(
    "--expires-in",
    metavar="DURATION",
    help="Expire DURATION from now (90m, 12h, 30d); default: never.",
)
@pass_state
@click.pass_context
def create(
    ctx: click.Context,
    state: CliState,
    name: str,
    scope: str,
    prefix: str | None,
    expires_in: str | None,
) -> None:
    """Create token NAME and print its secret, the only time it is shown.

    NAME is 1 to 64 lowercase letters, digits, '.', '_' or '-', and is never reused, not even
    after a revocation. --json prints the token with its secret. Give the secret to the client
    as ARTIFACTSTORE_TOKEN; it is sent as 'Authorization: Bearer <secret>'.

    \b
    Example:
      artifactstore token create ci-acme --scope write --prefix acme/ --expires-in 90d
    """
    from artifactstore import parse_duration

    lifetime = None if expires_in is None else parse_duration(expires_in)
    store = open_local_store(ctx, create=True)
    created, secret = store.create_token(name, scope, prefix, lifetime)
    output.token_created(created, secret, state.as_json)


@token.command("list")
@pass_state
@click.pass_context
def list_tokens(ctx: click.Context, state: CliState) -> None:
    """List the tokens: name, scope, prefix, created, expires, revoked (never a secret).

    \b
    Example:
      artifactstore token list
    """
    output.tokens(open_local_store(ctx).list_tokens(), state.as_json)


@token.command()
@click.argument("name")
@pass_state
@click.pass_context
def revoke(ctx: click.Context, state: CliState, name: str) -> None:
    """Revoke token NAME for good: the server refuses it from now on (403).

    Revoking a revoked token again changes nothing; an unknown NAME exits 2.

    \b
    Example:
      artifactstore token revoke ci-acme
    """
    revoked = open_local_store(ctx).revoke_token(name)
    if state.informs:
        output.token_revoked(revoked, state.as_json)


COMMANDS = (token,)
