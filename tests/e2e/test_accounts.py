"""Accounts end to end, as a developer meets them after `make run` (no SMTP
server configured): register, find the verification email in the mail
folder, verify; reset the password with the emailed token and see the old
refresh token fail."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

APP_BASE_URL = "https://app.example.test"


def mails_to(
    folder: Path, recipient: str, subject: str | None = None
) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == recipient and subject in (None, message["Subject"]):
            found.append(message)
    return found


def token_from(message, path: str) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(re.escape(f"{APP_BASE_URL}{path}?token=") + r"([A-Za-z0-9_\-]+)", text)
    assert match, text
    return match.group(1)


def test_verify_the_email_and_reset_the_password_through_the_mail_folder(
    start_private_stack, tmp_path, problem
):
    folder = tmp_path / "mail"
    api = start_private_stack(MAIL_DIR=str(folder), APP_BASE_URL=APP_BASE_URL)
    http = api.http
    writer = api.register()
    me = http.get("/v1/me", headers=writer.headers).json()
    assert (me["email"], me["is_verified"], me["locale"]) == (writer.email, False, "en")

    verification = api.wait_for(lambda: mails_to(folder, writer.email))[0]
    assert verification["Subject"] == "Confirm your email address"
    verified = http.post(
        "/v1/auth/verify-email", json={"token": token_from(verification, "/verify-email")}
    )
    assert verified.status_code == 200, verified.text
    assert http.get("/v1/me", headers=writer.headers).json()["is_verified"] is True

    # Reset: the same answer for an address without an account.
    for address in (writer.email, "nobody-here@example.com"):
        answer = http.post("/v1/auth/password-reset/request", json={"email": address})
        assert answer.status_code == 202, answer.text
    reset_mail = api.wait_for(lambda: mails_to(folder, writer.email, "Reset your password"))[0]
    token = token_from(reset_mail, "/reset-password")
    reset = http.post(
        "/v1/auth/password-reset", json={"token": token, "new_password": "a new passphrase"}
    )
    assert reset.status_code == 204, reset.text

    old = http.post("/v1/auth/refresh", json={"refresh_token": writer.tokens["refresh_token"]})
    problem(old, 401)
    problem(
        http.post("/v1/auth/login", json={"email": writer.email, "password": writer.password}),
        401,
    )
    logged_in = http.post(
        "/v1/auth/login", json={"email": writer.email, "password": "a new passphrase"}
    )
    assert logged_in.status_code == 200, logged_in.text
    again = http.post(
        "/v1/auth/password-reset", json={"token": token, "new_password": "yet another one"}
    )
    problem(again, 422)
    assert mails_to(folder, "nobody-here@example.com") == []
    # The mail folder is where the log says.
    assert str(folder.resolve()) in api.stack.log_path.read_text()
