"""``kantong users``: manage the staff accounts of the web map (``kantong serve --users``)."""

from __future__ import annotations

from pathlib import Path

import click

_USERS = click.option("--users", "users_file", required=True,
                      type=click.Path(dir_okay=False, path_type=Path),
                      help="Users file (JSON, kept outside every run directory).")


@click.group("users")
def command() -> None:
    """Add, remove or list staff accounts (passwords stored as salted scrypt hashes)."""


@command.command("add")
@click.argument("name")
@_USERS
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff",
              show_default=True, help="staff: one regency; admin: every regency.")
@click.option("--regency", default=None,
              help="BPS 4-digit regency code of a staff account (e.g. 6105).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (no prompt).")
@click.option("--replace", is_flag=True, help="Change an existing account.")
def add(name: str, users_file: Path, role: str, regency: str | None, password_stdin: bool,
        replace: bool) -> None:
    """Add the account NAME (asks for the password twice unless --password-stdin)."""
    from kantong.webmap.accounts import add_user

    if password_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = add_user(users_file, name, password, role=role, regency=regency, replace=replace)
    scope = "every regency" if user.is_admin else f"regency {user.regency}"
    click.echo(f"{'updated' if replace else 'added'} {user.role} {user.name} ({scope}) "
               f"in {users_file}")


@command.command("remove")
@click.argument("name")
@_USERS
def remove(name: str, users_file: Path) -> None:
    """Remove the account NAME."""
    from kantong.webmap.accounts import remove_user

    remove_user(users_file, name)
    click.echo(f"removed {name} from {users_file}")


@command.command("list")
@_USERS
def list_(users_file: Path) -> None:
    """List the accounts (name, role, regency; never the hashes)."""
    from kantong.webmap.accounts import list_users

    users = list_users(users_file)
    for user in users:
        click.echo(f"{user.name:<24} {user.role:<6} {user.regency or '-'}")
    if not users:
        click.echo(f"no accounts in {users_file}")
