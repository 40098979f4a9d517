"""``yidang clients|users|keys``: register OAuth clients and local users, rotate the signing key.

The commands open the store directly (``--data-dir``/``--mongodb-uri``, else ``YIDANG_*``), so
they work beside a running server on the same store (it sees a change at its next look-up).
``list`` prints a table and ``show`` JSON, neither with secrets: a password is asked for twice
(hidden) or read from stdin, and never printed; only a hash of it is stored.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

from server.access.principal import Role
from server.auth import keys as signing_keys
from server.auth import users as local_users
from server.auth.clients import ClientRecord, add_client, get_client, list_clients, patient_id, remove_client
from server.errors import BadRequest, NotFound
from server.settings import Settings, resolve_store
from server.stores.base import Store

T = TypeVar("T")

clients_app = typer.Typer(help="OAuth clients: backend services (private_key_jwt) and apps (authorization code).",
                          no_args_is_help=True)
users_app = typer.Typer(help="Local users who sign in at the built-in login page.", no_args_is_help=True)
keys_app = typer.Typer(help="The server's token-signing keys.", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option(help="The embedded store's directory [YIDANG_DATA_DIR]")]
MongoUri = Annotated[str | None, typer.Option(help="Use MongoDB at this URI [YIDANG_MONGODB_URI]")]


class CommandError(ValueError):
    """A failure told as one ``error: …`` line (exit status 1)."""


def settings_for(data_dir: Path | None, mongodb_uri: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if mongodb_uri:
        overrides["mongodb_uri"] = mongodb_uri
    return resolve_store(Settings(**overrides))


def make_store(settings: Settings, *, create: bool) -> Store:
    """The store ``settings`` name (as ``server.app.make_store``); ``create=False`` refuses an
    embedded store that does not exist (a command run from the wrong folder would make an empty one)."""
    if settings.store == "mongo":
        from server.stores.mongo import MongoStore

        if not settings.mongodb_uri:
            raise CommandError("YIDANG_MONGODB_URI (or --mongodb-uri) is required for the mongo store")
        return MongoStore(settings.mongodb_uri, database=settings.mongodb_database,
                          capabilities=settings.mongodb_query_forms)
    from server.stores.sqlite import SqliteStore

    db = (Path(settings.data_dir) / "yidang.db").resolve()
    if not create and not db.exists():
        raise CommandError(f"no store at {db}; give --data-dir DIR of an existing store (or set YIDANG_DATA_DIR)")
    return SqliteStore(settings.data_dir)


@asynccontextmanager
async def opened(data_dir: Path | None, mongodb_uri: str | None, *, create: bool = False) -> AsyncIterator[Store]:
    settings = settings_for(data_dir, mongodb_uri)
    store = make_store(settings, create=create)
    where = "mongo" if settings.store == "mongo" else f"sqlite ({(Path(settings.data_dir) / 'yidang.db').resolve()})"
    typer.echo(f"store: {where}", err=True)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def run(data_dir: Path | None, mongodb_uri: str | None, work: Callable[[Store], Awaitable[T]], *,
        create: bool = False) -> T:
    async def go() -> T:
        async with opened(data_dir, mongodb_uri, create=create) as store:
            return await work(store)

    return asyncio.run(go())


def when(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S") if us else ""


def print_table(table: Table) -> None:
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


# --- clients ----------------------------------------------------------------------------------------

@clients_app.command("add")
def clients_add(
    id_: Annotated[str, typer.Option("--id", help="Client id (the iss/sub of its client assertions)")],
    role: Annotated[str, typer.Option(help="institution, district, platform, auditor or resident")],
    institution: Annotated[str, typer.Option(help="Identifier of its institution (统一社会信用代码 or "
                                                  "医疗机构执业许可证登记号)")],
    scope: Annotated[str, typer.Option(help="SMART scopes it may be granted, space-separated")],
    jwks: Annotated[Path | None, typer.Option(help="File with its public JWK Set (RS384/ES384)")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="URL of its public JWK Set")] = None,
    patient: Annotated[str | None, typer.Option(help="Patient/ID a resident client acts for")] = None,
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Redirect URI of an authorization-code "
                                                                "client (repeatable)")] = None,
    public: Annotated[bool, typer.Option("--public", help="A public app: PKCE, no key")] = False,
    data_dir: DataDir = None,
    mongodb_uri: MongoUri = None,
) -> None:
    """Register a client."""
    document = None
    if jwks is not None:
        try:
            document = json.loads(jwks.read_text(encoding="utf-8"))
        except OSError as error:
            raise CommandError(f"--jwks: cannot read {jwks}: {error.strerror or error}") from None
        except ValueError as error:
            raise CommandError(f"--jwks: {jwks} is not JSON: {error}") from None
    record = ClientRecord(id=id_, role=cast(Role, role), institution=institution, scope=" ".join(scope.split()),
                          jwks=document, jwks_url=jwks_url, patient=patient_id(patient) if patient else None,
                          redirect_uris=tuple(redirect_uri or ()), public=public)
    run(data_dir, mongodb_uri, lambda store: add_client(store, record), create=True)
    typer.echo(f"client {id_} added (role {role}, institution {institution})")


@clients_app.command("list")
def clients_list(data_dir: DataDir = None, mongodb_uri: MongoUri = None) -> None:
    """List the clients (no keys)."""
    found = run(data_dir, mongodb_uri, list_clients)
    table = Table("id", "role", "institution", "scope", "patient", "authentication", "created")
    for c in found:
        how = "public (PKCE)" if c.public else f"jwks_url {c.jwks_url}" if c.jwks_url else "jwks (inline)"
        if c.redirect_uris:
            how += f", {len(c.redirect_uris)} redirect URI(s)"
        table.add_row(c.id, c.role, c.institution, c.scope, c.patient or "", how, when(c.created))
    print_table(table)


@clients_app.command("show")
def clients_show(id_: Annotated[str, typer.Argument(metavar="ID", help="Client id")],
                 data_dir: DataDir = None, mongodb_uri: MongoUri = None) -> None:
    """Print one client as JSON."""
    found = run(data_dir, mongodb_uri, lambda store: get_client(store, id_))
    if found is None:
        raise NotFound(f"no client '{id_}'")
    typer.echo(json.dumps(found.to_json(), indent=2, ensure_ascii=False))


@clients_app.command("remove")
def clients_remove(id_: Annotated[str, typer.Argument(metavar="ID", help="Client id")],
                   data_dir: DataDir = None, mongodb_uri: MongoUri = None) -> None:
    """Remove a client; its tokens stop being accepted."""
    if not run(data_dir, mongodb_uri, lambda store: remove_client(store, id_)):
        raise NotFound(f"no client '{id_}'")
    typer.echo(f"client {id_} removed")


@clients_app.command("keygen")
def clients_keygen(
    key: Annotated[Path, typer.Option(help="Where to write the client's private key (PEM, mode 0600)")],
    jwks: Annotated[Path, typer.Option(help="Where to write its public JWK Set (give this to `clients add`)")],
    alg: Annotated[str, typer.Option(help="ES384 (P-384) or RS384 (RSA 3072)")] = "ES384",
) -> None:
    """Make a key pair for a backend-services client (the private key stays with the client)."""
    from server.auth.client_side import generate

    if alg not in ("ES384", "RS384"):
        raise CommandError(f"--alg must be ES384 or RS384, not {alg!r}")
    made = generate(key, jwks, alg)  # type: ignore[arg-type]
    typer.echo(f"private key {key}, public JWKS {jwks} (kid {made['keys'][0]['kid']})")


@clients_app.command("token")
def clients_token(
    id_: Annotated[str, typer.Option("--id", help="Client id")],
    key: Annotated[Path, typer.Option(help="The client's private key (PEM)")],
    server: Annotated[str, typer.Option(help="The FHIR base URL")],
    scope: Annotated[str, typer.Option(help="SMART scopes to ask for")] = "system/*.rs",
    json_: Annotated[bool, typer.Option("--json", help="Print the whole token response")] = False,
) -> None:
    """Fetch an access token as a backend-services client (SMART client_credentials with a client
    assertion signed by --key) and print it, for scripts and curl."""
    from server.auth.client_side import fetch_token

    response = fetch_token(server, id_, key, scope)
    typer.echo(json.dumps(response) if json_ else response["access_token"])


# --- users ------------------------------------------------------------------------------------------

def read_password(from_stdin: bool) -> str:
    """One line of stdin, or asked twice without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (what the user types at the login page)")],
    role: Annotated[str, typer.Option(help="institution, district, platform, auditor or resident")],
    institution: Annotated[str, typer.Option(help="Identifier of the user's institution")],
    scope: Annotated[str, typer.Option(help="SMART scopes the user may be granted, space-separated")],
    patient: Annotated[str | None, typer.Option(help="Patient/ID a resident user is")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    data_dir: DataDir = None,
    mongodb_uri: MongoUri = None,
) -> None:
    """Add a local user (the password is asked for, or read from stdin)."""
    try:  # refuse bad fields before asking for a password
        local_users.check_fields(name, role=role, institution=institution, scope=" ".join(scope.split()),
                                 patient=local_users.patient_id(patient))
    except BadRequest as error:
        raise CommandError(f"--{error.expression[0] if error.expression else 'value'}: {error.message}") from None
    password = read_password(password_stdin)
    run(data_dir, mongodb_uri, lambda store: local_users.add_user(
        store, name, password, role=role, institution=institution, scope=scope, patient=patient), create=True)
    typer.echo(f"user {name} added (role {role}, institution {institution})")


@users_app.command("list")
def users_list(data_dir: DataDir = None, mongodb_uri: MongoUri = None) -> None:
    """List the users (no passwords)."""
    found = run(data_dir, mongodb_uri, local_users.list_users)
    table = Table("name", "role", "institution", "scope", "patient", "created")
    for u in found:
        table.add_row(u.name, u.role, u.institution, u.scope, u.patient or "", when(u.created))
    print_table(table)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="User name")],
                 data_dir: DataDir = None, mongodb_uri: MongoUri = None) -> None:
    """Remove a user (tokens already issued stay valid until they expire)."""
    if not run(data_dir, mongodb_uri, lambda store: local_users.remove_user(store, name)):
        raise NotFound(f"no user '{name}'")
    typer.echo(f"user {name} removed")


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="User name")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    data_dir: DataDir = None,
    mongodb_uri: MongoUri = None,
) -> None:
    """Set a user's password."""
    found = run(data_dir, mongodb_uri, lambda store: local_users.get_user(store, name))
    if found is None:
        raise NotFound(f"no user '{name}'")
    password = read_password(password_stdin)
    run(data_dir, mongodb_uri, lambda store: local_users.set_password(store, name, password))
    typer.echo(f"password of {name} changed")


# --- keys -------------------------------------------------------------------------------------------

KeysDir = Annotated[Path | None, typer.Option(help="Directory of the signing keys [YIDANG_AUTH_KEYS_DIR]; "
                                                   "default DATA_DIR/auth/keys")]


def keys_directory(keys_dir: Path | None, data_dir: Path | None) -> Path:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if keys_dir is not None:
        overrides["auth_keys_dir"] = keys_dir
    return signing_keys.keys_dir(Settings(**overrides))


@keys_app.command("rotate")
def keys_rotate(keys_dir: KeysDir = None, data_dir: DataDir = None) -> None:
    """Add a new signing key: it signs from now on; the older ones keep verifying their tokens."""
    key = signing_keys.rotate(keys_directory(keys_dir, data_dir))
    typer.echo(f"key {key.kid} added ({key.path}); it signs new tokens from now on")


@keys_app.command("list")
def keys_list(keys_dir: KeysDir = None, data_dir: DataDir = None) -> None:
    """List the signing keys, newest (the one that signs) first."""
    table = Table("kid", "created", "signs", "file")
    for n, key in enumerate(signing_keys.list_keys(keys_directory(keys_dir, data_dir))):
        table.add_row(key.kid, when(key.created), "yes" if n == 0 else "", str(key.path))
    print_table(table)
