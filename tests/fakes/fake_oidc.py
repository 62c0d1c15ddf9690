"""A local OpenID Connect provider for tests (and for trying sign-in by hand).

Standard library HTTP server in a thread, RS256 keys from joserfc. It serves:
  GET  /.well-known/openid-configuration   the discovery document
  GET  /jwks                               its public key set
  GET  /authorize                          auto-approves the configured user:
                                           302 to redirect_uri with code and state
  POST /token                              checks the client secret (basic or
                                           post), the redirect_uri and the PKCE
                                           verifier (S256); answers with tokens
                                           and an RS256 ID token
  GET  /userinfo                           the user, for the access token
  GET  /user, /user/emails                 the same user shaped like GitHub's
                                           plain OAuth 2 API (id, and a list of
                                           addresses with `verified`)

Run it:     python tests/fakes/fake_oidc.py --port 8090 --email ada@example.com
Import it:  with FakeOidc() as fake: ... fake.issuer ... fake.user = {...}

Tests change `user` (who signs in) and `tamper` (what is wrong with the next
ID tokens: "wrong-key", "wrong-nonce", "wrong-audience", "wrong-issuer",
"expired"), and read `authorize_requests` and `token_requests`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

TAMPERINGS = ("wrong-key", "wrong-nonce", "wrong-audience", "wrong-issuer", "expired")


class FakeOidc:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str = "fabula-test-client",
        client_secret: str = "fabula-test-secret",
        user: dict[str, Any] | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.user: dict[str, Any] = user or {
            "sub": "fake-user-1",
            "email": "ada@example.com",
            "email_verified": True,
            "name": "Ada Lovelace",
        }
        self.tamper: str | None = None
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self._codes: dict[str, dict[str, Any]] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def provider_config(self, **overrides: Any) -> dict[str, Any]:
        """The entry for USERS_OIDC_PROVIDERS_JSON."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "display_name": "Fake OIDC",
            **overrides,
        }

    def github_config(self, **overrides: Any) -> dict[str, Any]:
        """A plain OAuth 2 entry (no ID token) against the GitHub-shaped endpoints."""
        return {
            "authorize_url": f"{self.issuer}/authorize",
            "token_url": f"{self.issuer}/token",
            "userinfo_url": f"{self.issuer}/user",
            "emails_url": f"{self.issuer}/user/emails",
            "subject_field": "id",
            "scopes": "read:user user:email",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "display_name": "Fake GitHub",
            **overrides,
        }

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the provider's behaviour ----------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri:
            return 400, {}, {"error": "invalid_request"}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "redirect_uri": redirect_uri,
                "nonce": query.get("nonce"),
                "challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method"),
                "user": dict(self.user),
            }
        location = f"{redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return 302, {"Location": location}, None

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        self.token_requests.append(form)
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.client_id or not hmac.compare_digest(
            client_secret or "", self.client_secret
        ):
            return 401, {"error": "invalid_client"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if grant["method"] != "S256" or not hmac.compare_digest(
            challenge, grant["challenge"] or ""
        ):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[access_token] = grant["user"]
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": self.id_token(grant["user"], grant["nonce"]),
        }

    def id_token(self, user: dict[str, Any], nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **{k: v for k, v in user.items() if k in ("sub", "email", "email_verified", "name")},
        }
        key = self.key
        match self.tamper:
            case "wrong-key":
                key = self.other_key
            case "wrong-nonce":
                claims["nonce"] = "not-the-nonce"
            case "wrong-audience":
                claims["aud"] = "another-client"
            case "wrong-issuer":
                claims["iss"] = "https://evil.example"
            case "expired":
                claims["iat"], claims["exp"] = now - 3600, now - 600
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def userinfo(self, authorization: str | None) -> tuple[int, Any]:
        token = (authorization or "").removeprefix("Bearer ")
        user = self._access_tokens.get(token)
        if user is None:
            return 401, {"error": "invalid_token"}
        return 200, user

    def github_user(self, authorization: str | None) -> tuple[int, Any]:
        status, user = self.userinfo(authorization)
        if status != 200:
            return status, user
        # GitHub's /user: a numeric id, and an email it does not vouch for.
        return 200, {
            "id": int(hashlib.sha256(user["sub"].encode()).hexdigest()[:8], 16),
            "login": user["sub"],
            "name": user.get("name"),
            "email": user.get("email"),
        }

    def github_emails(self, authorization: str | None) -> tuple[int, Any]:
        status, user = self.userinfo(authorization)
        if status != 200:
            return status, user
        return 200, [
            {"email": user["email"], "primary": True, "verified": bool(user.get("email_verified"))}
        ]

    # -- HTTP --------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet in tests
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                authorization = self.headers.get("Authorization")
                match parts.path:
                    case "/.well-known/openid-configuration":
                        self._send(200, fake.discovery())
                    case "/jwks":
                        self._send(200, {"keys": [fake.key.as_dict(private=False)]})
                    case "/authorize":
                        status, headers, body = fake.authorize(query)
                        self._send(status, body, headers)
                    case "/userinfo":
                        self._send(*fake.userinfo(authorization))
                    case "/user":
                        self._send(*fake.github_user(authorization))
                    case "/user/emails":
                        self._send(*fake.github_emails(authorization))
                    case _:
                        self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path == "/token":
                    self._send(*fake.token(form, self.headers.get("Authorization")))
                else:
                    self._send(404, {"error": "not_found"})

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--email", default="ada@example.com")
    parser.add_argument("--unverified", action="store_true", help="the email is not verified")
    args = parser.parse_args()
    fake = FakeOidc(args.host, args.port)
    fake.user.update(email=args.email, email_verified=not args.unverified)
    print(json.dumps({"fake": fake.provider_config()}))
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
