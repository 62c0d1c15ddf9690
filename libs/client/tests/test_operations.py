"""One client method per operation of the gateway's OpenAPI document: every
operationId is mapped to the method that calls it, and each method is seen to
send its operation's HTTP method and path. A new operation without a client
method fails here until it is added (or, with a reason, left out below)."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

import pytest
from fabula_client.client import BaseClient

gateway_app = pytest.importorskip("fabula_gateway.app")
gateway_settings = pytest.importorskip("fabula_gateway.settings")

# Deliberately without a client method.
LEFT_OUT = {
    # Stripe calls it, signed with Stripe's secret; never an API user.
    "receive_stripe_webhook",
    # For load balancers and orchestrators, not for applications.
    "check_liveness",
    "check_readiness",
    # The signed local-storage targets: their URLs come in answers (a photo's
    # `upload.url`, a rendition's `url`); photos.upload() sends to the first,
    # a rendition is downloaded with any HTTP client.
    "upload_media",
    "download_media",
}

# operationId -> (resource attribute, method name)
METHODS = {
    "register": ("auth", "register"),
    "login": ("auth", "login"),
    "refresh_tokens": ("auth", "refresh"),
    "request_email_verification": ("auth", "request_email_verification"),
    "verify_email": ("auth", "verify_email"),
    "request_password_reset": ("auth", "request_password_reset"),
    "reset_password": ("auth", "reset_password"),
    "get_current_user": ("me", "get"),
    "update_current_user": ("me", "update"),
    "change_email": ("me", "change_email"),
    "export_account": ("account", "export"),
    "delete_account": ("account", "delete"),
    "list_identity_providers": ("identities", "providers"),
    "start_identity_sign_in": ("identities", "start_sign_in"),
    "complete_identity_sign_in": ("identities", "complete_sign_in"),
    "list_identities": ("identities", "list"),
    "unlink_identity": ("identities", "unlink"),
    "list_api_keys": ("api_keys", "list"),
    "create_api_key": ("api_keys", "create"),
    "revoke_api_key": ("api_keys", "revoke"),
    "admin_list_users": ("admin", "users"),
    "admin_get_user": ("admin", "get_user"),
    "admin_deactivate_user": ("admin", "deactivate_user"),
    "admin_reactivate_user": ("admin", "reactivate_user"),
    "admin_set_plan": ("admin", "set_plan"),
    "admin_set_superuser": ("admin", "set_superuser"),
    "admin_list_audit": ("admin", "audit"),
    "get_story_stats": ("stories", "stats"),
    "create_story": ("stories", "create"),
    "list_stories": ("stories", "list"),
    "get_story": ("stories", "get"),
    "delete_story": ("stories", "delete"),
    "update_story": ("stories", "update"),
    "continue_story": ("stories", "continue_"),
    "end_story": ("stories", "end"),
    "get_story_context": ("stories", "context"),
    "export_story": ("stories", "export"),
    "regenerate_segment": ("stories", "regenerate"),
    "list_segments": ("segments", "list"),
    "edit_segment": ("segments", "edit"),
    "list_alternatives": ("segments", "alternatives"),
    "select_alternative": ("segments", "select_alternative"),
    "list_revisions": ("segments", "revisions"),
    "restore_revision": ("segments", "restore_revision"),
    "list_branches": ("branches", "list"),
    "select_branch": ("branches", "select"),
    "create_lore_entry": ("lore", "create"),
    "list_lore_entries": ("lore", "list"),
    "get_lore_entry": ("lore", "get"),
    "update_lore_entry": ("lore", "update"),
    "delete_lore_entry": ("lore", "delete"),
    "share_story": ("sharing", "share"),
    "revoke_share": ("sharing", "revoke"),
    "get_shared_story": ("sharing", "get"),
    "suggest_stories": ("suggestions", "get"),
    "create_project": ("projects", "create"),
    "list_projects": ("projects", "list"),
    "get_project": ("projects", "get"),
    "update_project": ("projects", "update"),
    "delete_project": ("projects", "delete"),
    "submit_job": ("jobs", "submit"),
    "list_narratives": ("narratives", "list"),
    "get_narrative": ("narratives", "get"),
    "list_narrative_versions": ("narratives", "versions"),
    "revise_narrative": ("narratives", "revise"),
    "export_narrative": ("narratives", "export"),
    "get_job": ("jobs", "get"),
    "list_jobs": ("jobs", "list"),
    "cancel_job": ("jobs", "cancel"),
    "retry_job": ("jobs", "retry"),
    "watch_job": ("jobs", "watch"),
    "create_conversation": ("conversations", "create"),
    "list_conversations": ("conversations", "list"),
    "get_conversation": ("conversations", "get"),
    "update_conversation": ("conversations", "update"),
    "delete_conversation": ("conversations", "delete"),
    "send_message": ("conversations", "ask"),
    "answer_follow_up": ("conversations", "follow_up"),
    "resume_message": ("conversations", "resume"),
    "list_tutorials": ("tutorials", "list"),
    "create_tutorial": ("tutorials", "create"),
    "get_tutorial": ("tutorials", "get"),
    "update_tutorial": ("tutorials", "update"),
    "create_drawing": ("drawings", "create"),
    "list_drawings": ("drawings", "list"),
    "get_drawing": ("drawings", "get"),
    "delete_drawing": ("drawings", "delete"),
    "add_drawing_edit": ("drawings", "add_edit"),
    "create_picture_story": ("picture_stories", "create"),
    "list_picture_stories": ("picture_stories", "list"),
    "get_picture_story": ("picture_stories", "get"),
    "update_picture_story": ("picture_stories", "update"),
    "delete_picture_story": ("picture_stories", "delete"),
    "create_photo": ("photos", "create"),
    "list_photos": ("photos", "list"),
    "complete_photo": ("photos", "complete"),
    "get_photo": ("photos", "get"),
    "delete_photo": ("photos", "delete"),
    "get_usage": ("usage", "get"),
    "list_usage_logs": ("usage", "logs"),
    "get_usage_breakdown": ("usage", "breakdown"),
    "create_checkout": ("billing", "checkout"),
    "get_subscription": ("billing", "subscription"),
    "cancel_subscription": ("billing", "cancel_subscription"),
    "resume_subscription": ("billing", "resume_subscription"),
    "create_portal_session": ("billing", "portal"),
    "list_invoices": ("billing", "invoices"),
}


@functools.cache
def openapi_operations() -> dict[str, tuple[str, str]]:
    """operationId -> (HTTP method, path template), from the app built without backends."""
    closed = {
        f"{name}_addr": "127.0.0.1:1"
        for name in ("users", "stories", "generation", "billing", "media")
    }
    document = gateway_app.create_app(gateway_settings.GatewaySettings(**closed)).openapi()
    return {
        operation["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }


class Recorder(BaseClient):
    """Sends nothing: keeps the last call a method made."""

    def _request(self, call):
        self.sent = call

    def _stream(self, call):
        self.sent = call
        return iter(())


def placeholder(parameter: inspect.Parameter) -> Any:
    annotation = str(parameter.annotation)
    if annotation.startswith(("list", "Sequence")):
        return []
    if annotation.startswith("bool"):
        return True
    return f"{parameter.name}-value"


def test_every_operation_has_a_client_method_or_a_reason_not_to():
    operations = openapi_operations()
    missing = set(operations) - set(METHODS) - LEFT_OUT
    assert not missing, (
        f"operations without a client method (add one, or to LEFT_OUT): {sorted(missing)}"
    )
    gone = (set(METHODS) | LEFT_OUT) - set(operations)
    assert not gone, f"no longer in the OpenAPI document: {sorted(gone)}"


@pytest.mark.parametrize("operation_id", sorted(METHODS))
def test_each_method_sends_its_operation(operation_id):
    method, template = openapi_operations()[operation_id]
    client = Recorder("http://api.test")
    resource, name = METHODS[operation_id]
    function = getattr(getattr(client, resource), name)
    args, kwargs = [], {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.default is not inspect.Parameter.empty or parameter.kind in (
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        ):
            continue
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = placeholder(parameter)
        else:
            args.append(placeholder(parameter))
    if operation_id == "refresh_tokens":
        client._core.credentials.tokens = type("T", (), {"refresh_token": "r"})()
    function(*args, **kwargs)
    pattern = re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
    assert client.sent.method == method and re.match(pattern, client.sent.path), (
        f"{resource}.{name} sent {client.sent.method} {client.sent.path}, not {method} {template}"
    )
