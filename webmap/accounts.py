"""Staff accounts of the web map: a users file with salted scrypt password hashes.

The users file is JSON, kept outside any run directory (it is not published data and a
run is replaced as a whole)::

    {"kantong_users": 1,
     "users": {"ani": {"role": "staff", "regency": "6105", "hash": "scrypt:32768:8:1$..."}}}

Roles: ``staff`` (one regency: sees it at ``[privacy] staff_min_households``) and ``admin``
(every regency at that threshold). Passwords are hashed with Werkzeug's
``generate_password_hash`` (scrypt, random salt) and checked in constant time; the file is
written atomically with mode 0600.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from kantong.engine.atomic import atomic_path, claim_file
from kantong.engine.errors import InputError

logger = logging.getLogger(__name__)

#: Roles a user can have.
ROLES = ("staff", "admin")
#: Shortest password accepted.
MIN_PASSWORD_LENGTH = 10
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_REGENCY_RE = re.compile(r"\d{4}")
_MARKER = "kantong_users"
_MAX_BYTES = 4 << 20
#: Hash checked when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone", method="scrypt")


@dataclasses.dataclass(frozen=True)
class User:
    """One account: ``name``, ``role`` (:data:`ROLES`) and ``regency`` (staff only)."""

    name: str
    role: str
    regency: str | None

    @property
    def is_admin(self) -> bool:
        """Whether the account sees every regency."""
        return self.role == "admin"


def check_name(name: str) -> str:
    """Return a valid user name (lower-case letters, digits, ``._-``; 1-64) or raise."""
    name = str(name).strip()
    if not _NAME_RE.fullmatch(name):
        raise InputError(f"invalid user name {name!r}: use 1-64 lower-case letters, digits, "
                         "'.', '_' or '-'")
    return name


def read_users(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a users file; a missing file is empty; anything else malformed is ``InputError``."""
    p = Path(path)
    if not p.exists():
        return {}
    if not p.is_file():
        raise InputError(f"{p}: users file is not a regular file")
    if p.stat().st_size > _MAX_BYTES:
        raise InputError(f"{p}: users file larger than {_MAX_BYTES >> 20} MiB")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not a kantong users file ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or _MARKER not in doc or not isinstance(doc.get("users"), dict):
        raise InputError(f"{p}: not a kantong users file")
    users = doc["users"]
    for name, rec in users.items():
        if not (isinstance(rec, dict) and rec.get("role") in ROLES
                and isinstance(rec.get("hash"), str)):
            raise InputError(f"{p}: user {name!r} has a malformed record")
    return users


def _write(path: Path, users: dict[str, dict[str, Any]]) -> None:
    text = json.dumps({_MARKER: 1, "users": dict(sorted(users.items()))}, indent=2) + "\n"
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)


def _recognise(path: Path) -> bool:
    try:
        read_users(path)
    except InputError:
        return False
    return True


def add_user(path: str | os.PathLike[str], name: str, password: str, *, role: str = "staff",
             regency: str | None = None, replace: bool = False) -> User:
    """Add (or with ``replace`` update) an account in the users file.

    Parameters
    ----------
    path
        The users file (created if missing; never inside a run directory).
    name
        User name (:func:`check_name`).
    password
        At least :data:`MIN_PASSWORD_LENGTH` characters; stored only as a scrypt hash.
    role
        ``staff`` (needs ``regency``) or ``admin``.
    regency
        BPS 4-digit regency code of a staff account.
    replace
        Allow replacing an existing account (new password, role or regency).

    Returns
    -------
    User
    """
    p = Path(path)
    claim_file(p, command="users", recognise=_recognise, flag="--users")
    name = check_name(name)
    if role not in ROLES:
        raise InputError(f"unknown role {role!r} (choose from {', '.join(ROLES)})")
    if role == "staff":
        if regency is None or not _REGENCY_RE.fullmatch(str(regency).strip()):
            raise InputError("a staff account needs --regency, a BPS 4-digit code (e.g. 6105)")
        regency = str(regency).strip()
    elif regency is not None:
        raise InputError("an admin account sees every regency: drop --regency")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    users = read_users(p)
    if name in users and not replace:
        raise InputError(f"{p}: user {name!r} exists (use --replace to change it)")
    users[name] = {"role": role, "regency": regency,
                   "hash": generate_password_hash(password, method="scrypt")}
    _write(p, users)
    logger.info("users file %s: %s %s", p, "updated" if replace else "added", name)
    return User(name, role, regency)


def remove_user(path: str | os.PathLike[str], name: str) -> None:
    """Remove an account from the users file (``InputError`` if it does not exist)."""
    p = Path(path)
    users = read_users(p)
    if name not in users:
        raise InputError(f"{p}: no user {name!r}")
    del users[name]
    _write(p, users)


def list_users(path: str | os.PathLike[str]) -> list[User]:
    """Return the accounts of a users file, sorted by name (hashes are not returned)."""
    return [User(n, r["role"], r.get("regency")) for n, r in sorted(read_users(path).items())]


def authenticate(users: dict[str, dict[str, Any]], name: str, password: str) -> User | None:
    """Return the account if ``password`` is right, else ``None`` (same cost either way)."""
    rec = users.get(name)
    ok = check_password_hash(rec["hash"] if rec else _DUMMY_HASH, password)
    if not (rec and ok):
        return None
    return User(name, rec["role"], rec.get("regency"))


__all__ = ["MIN_PASSWORD_LENGTH", "ROLES", "User", "add_user", "authenticate", "check_name",
           "list_users", "read_users", "remove_user"]
