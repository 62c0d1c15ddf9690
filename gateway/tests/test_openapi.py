"""The OpenAPI document is a contract: operationIds and error media types."""

from __future__ import annotations

import re

import pytest
from fabula_gateway.app import create_app
from fastapi import FastAPI
from fastapi.routing import APIRoute

# Client generators name their methods after these: changing one breaks clients.
OPERATIONS = {
    ("POST", "/v1/auth/register"): "register",
    ("POST", "/v1/auth/login"): "login",
    ("POST", "/v1/auth/refresh"): "refresh_tokens",
    ("GET", "/v1/me"): "get_current_user",
    ("GET", "/v1/auth/providers"): "list_identity_providers",
    ("GET", "/v1/auth/oidc/{provider}/start"): "start_identity_sign_in",
    ("GET", "/v1/auth/oidc/{provider}/callback"): "complete_identity_sign_in",
    ("GET", "/v1/me/identities"): "list_identities",
    ("DELETE", "/v1/me/identities/{identity_id}"): "unlink_identity",
    ("PATCH", "/v1/me"): "update_current_user",
    ("POST", "/v1/me/email"): "change_email",
    ("POST", "/v1/auth/verify-email/request"): "request_email_verification",
    ("POST", "/v1/auth/verify-email"): "verify_email",
    ("POST", "/v1/auth/password-reset/request"): "request_password_reset",
    ("POST", "/v1/auth/password-reset"): "reset_password",
    ("GET", "/v1/me/export"): "export_account",
    ("DELETE", "/v1/me"): "delete_account",
    ("POST", "/v1/stories"): "create_story",
    ("GET", "/v1/stories"): "list_stories",
    ("GET", "/v1/stories/{story_id}"): "get_story",
    ("GET", "/v1/stories/{story_id}/segments"): "list_segments",
    ("DELETE", "/v1/stories/{story_id}"): "delete_story",
    ("POST", "/v1/stories/{story_id}/continue"): "continue_story",
    ("POST", "/v1/stories/{story_id}/segments/{segment_id}/regenerate"): "regenerate_segment",
    ("GET", "/v1/stories/{story_id}/segments/{segment_id}/alternatives"): "list_alternatives",
    (
        "POST",
        "/v1/stories/{story_id}/segments/{segment_id}/alternatives/{alternative_id}/select",
    ): "select_alternative",
    ("PATCH", "/v1/stories/{story_id}/segments/{segment_id}"): "edit_segment",
    ("GET", "/v1/stories/{story_id}/segments/{segment_id}/revisions"): "list_revisions",
    (
        "POST",
        "/v1/stories/{story_id}/segments/{segment_id}/revisions/{revision_id}/restore",
    ): "restore_revision",
    ("GET", "/v1/stories/{story_id}/branches"): "list_branches",
    ("POST", "/v1/stories/{story_id}/branches/{branch_id}/select"): "select_branch",
    ("POST", "/v1/stories/{story_id}/end"): "end_story",
    ("PATCH", "/v1/stories/{story_id}"): "update_story",
    ("POST", "/v1/stories/{story_id}/lore"): "create_lore_entry",
    ("GET", "/v1/stories/{story_id}/lore"): "list_lore_entries",
    ("GET", "/v1/stories/{story_id}/lore/{entry_id}"): "get_lore_entry",
    ("PATCH", "/v1/stories/{story_id}/lore/{entry_id}"): "update_lore_entry",
    ("DELETE", "/v1/stories/{story_id}/lore/{entry_id}"): "delete_lore_entry",
    ("GET", "/v1/stories/{story_id}/context"): "get_story_context",
    ("GET", "/v1/stories/stats"): "get_story_stats",
    ("POST", "/v1/stories/{story_id}/share"): "share_story",
    ("DELETE", "/v1/stories/{story_id}/share"): "revoke_share",
    ("GET", "/v1/shared/{token}"): "get_shared_story",
    ("GET", "/v1/stories/{story_id}/export"): "export_story",
    ("GET", "/v1/suggestions"): "suggest_stories",
    ("POST", "/v1/projects"): "create_project",
    ("GET", "/v1/projects"): "list_projects",
    ("GET", "/v1/projects/{project_id}"): "get_project",
    ("PATCH", "/v1/projects/{project_id}"): "update_project",
    ("DELETE", "/v1/projects/{project_id}"): "delete_project",
    ("POST", "/v1/projects/{project_id}/jobs"): "submit_job",
    ("GET", "/v1/projects/{project_id}/narratives"): "list_narratives",
    ("GET", "/v1/narratives/{narrative_id}"): "get_narrative",
    ("GET", "/v1/narratives/{narrative_id}/versions"): "list_narrative_versions",
    ("POST", "/v1/narratives/{narrative_id}/revise"): "revise_narrative",
    ("GET", "/v1/narratives/{narrative_id}/export"): "export_narrative",
    ("GET", "/v1/jobs/{job_id}"): "get_job",
    ("GET", "/v1/jobs"): "list_jobs",
    ("POST", "/v1/jobs/{job_id}/cancel"): "cancel_job",
    ("POST", "/v1/jobs/{job_id}/retry"): "retry_job",
    ("GET", "/v1/jobs/{job_id}/events"): "watch_job",
    ("POST", "/v1/conversations"): "create_conversation",
    ("GET", "/v1/conversations"): "list_conversations",
    ("GET", "/v1/conversations/{conversation_id}"): "get_conversation",
    ("PATCH", "/v1/conversations/{conversation_id}"): "update_conversation",
    ("DELETE", "/v1/conversations/{conversation_id}"): "delete_conversation",
    ("POST", "/v1/conversations/{conversation_id}/messages"): "send_message",
    ("POST", "/v1/conversations/{conversation_id}/follow-up"): "answer_follow_up",
    ("POST", "/v1/conversations/{conversation_id}/messages/{message_id}/resume"): "resume_message",
    ("GET", "/v1/tutorials"): "list_tutorials",
    ("POST", "/v1/tutorials"): "create_tutorial",
    ("GET", "/v1/tutorials/{tutorial_id}"): "get_tutorial",
    ("PATCH", "/v1/tutorials/{tutorial_id}"): "update_tutorial",
    ("POST", "/v1/drawings"): "create_drawing",
    ("GET", "/v1/drawings"): "list_drawings",
    ("GET", "/v1/drawings/{drawing_id}"): "get_drawing",
    ("DELETE", "/v1/drawings/{drawing_id}"): "delete_drawing",
    ("POST", "/v1/drawings/{drawing_id}/edits"): "add_drawing_edit",
    ("POST", "/v1/drawings/{drawing_id}/stories"): "create_picture_story",
    ("GET", "/v1/picture-stories"): "list_picture_stories",
    ("GET", "/v1/picture-stories/{picture_story_id}"): "get_picture_story",
    ("PATCH", "/v1/picture-stories/{picture_story_id}"): "update_picture_story",
    ("DELETE", "/v1/picture-stories/{picture_story_id}"): "delete_picture_story",
    ("POST", "/v1/photos"): "create_photo",
    ("POST", "/v1/photos/{photo_id}/complete"): "complete_photo",
    ("GET", "/v1/photos"): "list_photos",
    ("GET", "/v1/photos/{photo_id}"): "get_photo",
    ("DELETE", "/v1/photos/{photo_id}"): "delete_photo",
    ("PUT", "/v1/media/uploads/{token}"): "upload_media",
    ("GET", "/v1/media/downloads/{token}"): "download_media",
    ("GET", "/v1/usage"): "get_usage",
    ("POST", "/v1/billing/checkout"): "create_checkout",
    ("GET", "/v1/billing/subscription"): "get_subscription",
    ("POST", "/v1/billing/subscription/cancel"): "cancel_subscription",
    ("POST", "/v1/billing/subscription/resume"): "resume_subscription",
    ("POST", "/v1/billing/portal"): "create_portal_session",
    ("GET", "/v1/billing/invoices"): "list_invoices",
    ("POST", "/v1/webhooks/stripe"): "receive_stripe_webhook",
    ("GET", "/v1/usage/logs"): "list_usage_logs",
    ("GET", "/v1/usage/breakdown"): "get_usage_breakdown",
    ("POST", "/v1/me/api-keys"): "create_api_key",
    ("GET", "/v1/me/api-keys"): "list_api_keys",
    ("DELETE", "/v1/me/api-keys/{api_key_id}"): "revoke_api_key",
    ("GET", "/v1/admin/users"): "admin_list_users",
    ("GET", "/v1/admin/users/{user_id}"): "admin_get_user",
    ("POST", "/v1/admin/users/{user_id}/deactivate"): "admin_deactivate_user",
    ("POST", "/v1/admin/users/{user_id}/reactivate"): "admin_reactivate_user",
    ("PUT", "/v1/admin/users/{user_id}/plan"): "admin_set_plan",
    ("POST", "/v1/admin/users/{user_id}/superuser"): "admin_set_superuser",
    ("GET", "/v1/admin/audit"): "admin_list_audit",
    ("GET", "/healthz"): "check_liveness",
    ("GET", "/readyz"): "check_readiness",
}


@pytest.fixture
def schema(settings) -> dict:
    return create_app(settings).openapi()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_operation_ids_are_explicit_stable_and_unique(schema):
    found = {(method, path): op["operationId"] for method, path, op in operations(schema)}

    assert found == OPERATIONS
    assert len(set(found.values())) == len(found)


def test_a_route_without_an_operation_id_is_refused(settings):
    app: FastAPI = create_app(settings)

    with pytest.raises(RuntimeError, match="operation_id"):

        @app.get("/v1/forgotten")
        async def forgotten() -> None: ...


def test_every_error_response_is_documented_as_problem_json(schema):
    for method, path, operation in operations(schema):
        assert operation.get("summary") and operation.get("tags"), (method, path)
        for status, response in operation["responses"].items():
            if status[0] in "45":
                assert set(response["content"]) == {"application/problem+json"}, (
                    method,
                    path,
                    status,
                )


def test_generated_by_explains_the_offline_generator(schema):
    assert "not a language model" in schema["info"]["description"]
    generated_by = schema["components"]["schemas"]["GeneratedBy"]["properties"]
    assert "not a language model" in generated_by["is_language_model"]["description"]


def test_protected_routes_declare_bearer_auth(schema):
    public = {
        "/v1/webhooks/stripe",  # Stripe signs it instead
        "/v1/auth/register",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/providers",
        "/v1/auth/oidc/{provider}/start",
        "/v1/auth/oidc/{provider}/callback",
        # The emailed token is the credential.
        "/v1/auth/verify-email",
        "/v1/auth/password-reset/request",
        "/v1/auth/password-reset",
        "/healthz",
        "/readyz",
        # The share link's token is the credential.
        "/v1/shared/{token}",
        # Signed file links: the signature is the credential.
        "/v1/media/uploads/{token}",
        "/v1/media/downloads/{token}",
    }
    for method, path, operation in operations(schema):
        assert bool(operation.get("security")) == (path not in public), (method, path)


def test_get_story_documents_the_full_default_and_the_basic_view(schema):
    operation = schema["paths"]["/v1/stories/{story_id}"]["get"]
    [view] = [p for p in operation["parameters"] if p["name"] == "view"]
    assert view["in"] == "query" and not view.get("required", False)
    assert view["schema"]["enum"] == ["full", "basic"]
    assert view["schema"]["default"] == "full"
    shapes = operation["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    assert [s["$ref"].rsplit("/", 1)[1] for s in shapes] == ["Story", "StorySummary"]
    components = schema["components"]["schemas"]
    assert "segments" in components["Story"]["required"]
    assert "segments" not in components["StorySummary"]["properties"]
    assert "segment_count" in components["StorySummary"]["required"]


def test_a_402_documents_the_plan_the_limit_and_when_it_resets(schema):
    operation = schema["paths"]["/v1/stories"]["post"]
    content = operation["responses"]["402"]["content"]["application/problem+json"]
    assert content["schema"]["$ref"].endswith("/QuotaProblem")
    members = schema["components"]["schemas"]["QuotaProblem"]["properties"]
    assert {"plan", "quota", "limit", "resets_at"} <= set(members)


def _resolve(schema: dict, document: dict) -> dict:
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _has_example(media: dict, document: dict) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = media.get("schema", {})
    candidates = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    return any(
        "example" in _resolve(c, document) or "examples" in _resolve(c, document)
        for c in candidates
        if c.get("type") != "null"
    )


def test_every_operation_is_summarised_and_every_request_body_has_an_example(schema):
    for method, path, operation in operations(schema):
        assert operation.get("summary"), (method, path)
        assert operation.get("operationId"), (method, path)
        body = operation.get("requestBody")
        if body is None:
            continue
        for media_type, media in body["content"].items():
            assert _has_example(media, schema), (method, path, media_type)


def test_every_json_answer_has_an_example(schema):
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/json")
            if status.startswith("2") and media is not None:
                assert _has_example(media, schema), (method, path, status)


def test_every_problem_answer_shows_the_problem_types_it_may_have(schema):
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status[0] not in "45":
                continue
            examples = response["content"]["application/problem+json"].get("examples")
            assert examples, (method, path, status)
            for example in examples.values():
                document = example["value"]
                assert document["status"] == int(status), (method, path, status)
                assert document["title"] and document["detail"], (method, path, status)


def test_a_route_naming_problem_types_shows_an_example_of_each(schema):
    conflict = schema["paths"]["/v1/stories/{story_id}/continue"]["post"]["responses"]["409"]
    examples = conflict["content"]["application/problem+json"]["examples"]
    assert {example["value"]["type"].rsplit("/", 1)[1] for example in examples.values()} == {
        "story-busy",
        "story-complete",
        "idempotency-key-in-progress",
    }
    invalid = schema["paths"]["/v1/stories"]["post"]["responses"]["422"]
    examples = invalid["content"]["application/problem+json"]["examples"]
    assert examples["validation-error"]["value"]["errors"][0]["pointer"] == "#/password"
    assert "idempotency-key-reused" in examples


def test_the_description_lists_every_problem_type(schema):
    from fabula_gateway.openapi import PROBLEM_TYPES

    description = schema["info"]["description"]
    for kind in PROBLEM_TYPES:
        if kind.slug:
            assert f"| `{kind.slug}` | {kind.status} |" in description


def test_every_operation_documents_the_gateways_own_problems(schema):
    for method, path, operation in operations(schema):
        statuses = set(operation["responses"])
        assert {"431", "500", "503"} <= statuses, (method, path)
        if "requestBody" in operation:
            assert {"400", "408", "413", "415", "422"} <= statuses, (method, path)


def test_a_422_is_documented_only_where_a_parameter_can_be_invalid(schema):
    # A malformed story id is a 404; an identity id has a maximum length.
    assert "422" not in schema["paths"]["/v1/stories/{story_id}"]["delete"]["responses"]
    assert "422" in schema["paths"]["/v1/me/identities/{identity_id}"]["delete"]["responses"]


def _api_routes(routes):
    """The app's API routes in the order a request is matched against them."""
    for route in routes:
        if hasattr(route, "original_router"):  # an included router
            yield from _api_routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def test_no_route_is_shadowed_by_one_matched_before_it(settings):
    """Routers are included hottest first (matching walks the routes one by
    one), so their order is free to change only while every route is still
    the first to match its own path: /v1/stories/stats is not a story id."""
    routes = list(_api_routes(create_app(settings).router.routes))
    assert {(m, r.path) for r in routes for m in r.methods if m != "HEAD"} == set(OPERATIONS)
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        for method in route.methods:
            first = next(r for r in routes if method in r.methods and r.path_regex.match(path))
            assert first is route, f"{method} {route.path} is caught by {first.path}"
