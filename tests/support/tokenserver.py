"""A small distribution token server (docker token auth spec) for registry tests.

It signs JWTs with RS256 and an ``x5c`` header holding a self-signed test certificate; that
certificate is the registry's ``auth.token.rootcertbundle``, so the real registry verifies every
token. Policy: known users may pull everything and push to repositories under their
``push_prefixes``; anonymous callers may pull repositories under ``anonymous_pull``. Tokens are
short-lived, and ``exp_offset_s`` can issue tokens that are already past their ``exp`` (the
registry still accepts those for 60 s). Runs as a thread on a free loopback port.
Neither this module nor its callers import the package under test.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support import secretguard

SERVICE = "oci-normalize-test-registry"
ISSUER = "oci-normalize-test-issuer"
KEY_BITS = 2048


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Grant:
    """One token request as the server saw it (no secrets)."""

    method: str  # GET (basic/anonymous) or POST (refresh_token)
    user: str | None
    scopes: tuple[str, ...]
    granted: tuple[str, ...]


@dataclass
class TokenServer:
    workdir: Path
    users: dict[str, str] = field(default_factory=dict)  # name -> password
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user name
    push_prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user -> prefixes
    anonymous_pull: tuple[str, ...] = ("public/",)
    lifetime_s: int = 60
    expires_in: int | None = None  # what the answer announces; default lifetime_s
    exp_offset_s: int = 0  # added to exp (negative: already expired)
    grants: list[Grant] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # every request target, query included

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oci-normalize test tokens")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rootcertbundle = self.workdir / "token-root.pem"
        self.rootcertbundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        for secret in [*self.users.values(), *self.refresh_tokens]:
            secretguard.register(secret)

    # ---- policy and signing ---------------------------------------------------------------

    def allowed(self, user: str | None, scope: str) -> tuple[str, list[str]] | None:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind != "repository" or not name:
            return None
        wanted = [a for a in actions.split(",") if a]
        ok: list[str] = []
        for action in wanted:
            if user is None:
                if action == "pull" and name.startswith(self.anonymous_pull):
                    ok.append(action)
            elif action == "pull" or (
                action == "push" and name.startswith(self.push_prefixes.get(user, ()))
            ):
                ok.append(action)
        return (name, ok) if ok else None

    def issue(self, user: str | None, scopes: list[str], method: str = "GET") -> str:
        access = []
        for scope in scopes:
            got = self.allowed(user, scope)
            if got is not None:
                access.append({"type": "repository", "name": got[0], "actions": got[1]})
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": SERVICE,
            "exp": now + self.lifetime_s + self.exp_offset_s,
            "nbf": now - 10,
            "iat": now - 10,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = signing_input + "." + _b64url(signature)
        secretguard.register(token)
        with self._lock:
            self.grants.append(
                Grant(
                    method,
                    user,
                    tuple(scopes),
                    tuple(f"{a['name']}:{','.join(a['actions'])}" for a in access),
                )
            )
        return token

    # ---- HTTP ------------------------------------------------------------------------------

    @property
    def realm(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/token"

    def registry_config(self) -> dict[str, Any]:
        """``extra_config`` for the registry factory: token auth trusting this server."""
        return {
            "auth": {
                "token": {
                    "realm": self.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(self.rootcertbundle),
                }
            }
        }

    def start(self) -> TokenServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: and no request line can leak a secret into a log

            def do_GET(self) -> None:  # noqa: N802
                owner.paths.append(self.path)
                query = parse_qs(urlsplit(self.path).query)
                user = owner._basic_user(self.headers.get("Authorization"))
                if user is False:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                self._grant("GET", user or None, query.get("scope", []))

            def do_POST(self) -> None:  # noqa: N802
                owner.paths.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if form.get("grant_type") != ["refresh_token"]:
                    self._answer(400, {"error": "unsupported_grant_type"})
                    return
                user = owner.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                if user is None:
                    self._answer(401, {"error": "invalid_grant"})
                    return
                self._grant("POST", user, " ".join(form.get("scope", [])).split())

            def _grant(self, method: str, user: str | None, scopes: list[str]) -> None:
                token = owner.issue(user, scopes, method)
                expires_in = owner.expires_in if owner.expires_in is not None else owner.lifetime_s
                self._answer(200, {"token": token, "access_token": token, "expires_in": expires_in})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _basic_user(self, header: str | None) -> str | Literal[False]:
        """'' for anonymous, the user name, or False for wrong credentials."""
        if not header:
            return ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return user if self.users.get(user) == password else False

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def token_server(workdir: Path, **kwargs: Any) -> Iterator[TokenServer]:
    with TokenServer(workdir, **kwargs) as server:
        yield server
