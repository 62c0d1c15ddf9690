"""The demo app at /app in a real browser (Debian's chromium driven by
Playwright) against a real stack: what a person sees, step by step.

Screenshots of every step are kept in test-artifacts/browser/ (gitignored;
CI keeps the folder as the run's artefacts).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from fabula_devtools.stack import TEST_STACK, Stack, stack_environment, start_stack, stop_stack

pytestmark = pytest.mark.e2e

# Generous: a busy two-core machine may take minutes to start a whole stack.
STACK_START_SECONDS = 240

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# Slow enough that the text is seen arriving, fast enough for the suite.
TOKEN_DELAY_MS = "15"
# What a person would wait for at most on a busy machine.
EXPECT_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(
            "no chromium on PATH: install Debian's (apt-get install chromium); "
            "Playwright's own browser downloads are not used"
        )
    return path


@pytest.fixture
def browser_page(chromium_path: str, request) -> Iterator:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        # A CSP violation or a script error is logged to the console.
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.console_errors = errors
        try:
            yield page
        finally:
            shots = ARTIFACTS / request.node.name
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shots / "last.png", full_page=True)
            context.close()
            browser.close()


class Shots:
    """Numbered full-page screenshots of one test."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.folder = ARTIFACTS / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def __call__(self, step: str) -> None:
        self.count += 1
        self.page.screenshot(path=self.folder / f"{self.count:02d}-{step}.png", full_page=True)


@pytest.fixture(scope="module")
def webapp_stack(tmp_path_factory) -> Iterator[Stack]:
    """A stack of this module's own: its generator writes slowly enough to be watched."""
    running = start_stack(
        # A loaded machine (CI's two cores) may take seconds to hash a password.
        stack_environment(
            **TEST_STACK,
            GENERATION_OFFLINE_TOKEN_DELAY_MS=TOKEN_DELAY_MS,
            GRPC_DEADLINE_SECONDS="10",
            # The chairman asks two questions before the council deliberates.
            COUNCIL_FOLLOW_UP_QUESTIONS="2",
        ),
        tmp_path_factory.mktemp("webapp") / "fabula.log",
        timeout=STACK_START_SECONDS,
    )
    yield running
    assert stop_stack(running) == 0, running.log_tail()


def test_story_flow_in_a_browser(webapp_stack, browser_page, request):
    page = browser_page
    shot = Shots(page, request.node.name)
    email = f"reader-{uuid.uuid4().hex[:8]}@example.com"

    page.goto(webapp_stack.base_url + "/app")
    expect(page.get_by_role("heading", level=1)).to_have_text("Write a story with a model")
    shot("signed-out")

    # Sign up.
    signup = page.get_by_role("form", name="Create an account")
    signup.get_by_label("Name").fill("Ada Reader")
    signup.get_by_label("Email").fill(email)
    signup.get_by_label("Password").fill("correct horse battery")
    signup.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your stories")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    expect(page.get_by_text("No stories yet.")).to_be_visible()
    expect(page.locator("#usage-text")).to_have_text("0 of 5 used (free plan)")
    shot("signed-up")

    # A new story from a genre: its opening appears while it is written, then
    # the story is shown with it.
    new_story = page.get_by_role("form", name="Start a story")
    new_story.get_by_label("Genre").fill("fantasy")
    new_story.get_by_label("Characters").fill("Mara, the keeper")
    new_story.get_by_role("button", name="Start writing").click()
    expect(page.locator("#opening")).to_have_attribute("aria-busy", "true")
    expect(page.locator("#opening-text")).not_to_be_empty()
    opening_partial = page.locator("#opening-text").inner_text()
    shot("opening-written")
    segments = page.get_by_role("list", name="The story so far").get_by_role("listitem")
    expect(segments).to_have_count(1)
    opening = segments.first.locator("p").first.inner_text()
    assert opening.startswith(opening_partial.strip()[:20]), (opening_partial, opening)
    expect(page.locator("#story-meta")).to_contain_text("fantasy · with Mara, the keeper")
    # The stack runs the offline generator, and the reader is told it is not a model.
    expect(page.locator("#story-meta")).to_contain_text("not a language model")
    title = page.locator("#story-title").inner_text()
    assert title.strip()
    expect(page.locator("#usage-text")).to_have_text("1 of 5 used (free plan)")
    shot("opening")

    # Continue: the text appears while it is written, then becomes the story's.
    page.get_by_label("What happens next?").fill("A storm cuts the island off.")
    page.get_by_role("button", name="Continue").click()
    writing = page.locator("#writing")
    expect(writing).to_have_attribute("aria-busy", "true")
    expect(page.locator("#writing-text")).not_to_be_empty()
    partial = page.locator("#writing-text").inner_text()
    shot("continuing")
    expect(segments).to_have_count(2)
    expect(writing).to_be_hidden()
    second = segments.nth(1).locator("p").first.inner_text()
    assert second.startswith(partial.strip()[:20]), (partial, second)
    expect(page.get_by_label("What happens next?")).to_have_value("")
    expect(page.locator("#usage-text")).to_have_text("2 of 5 used (free plan)")
    shot("continued")

    # Regenerate the last part: a second version replaces it.
    page.get_by_role("button", name="Rewrite the last part").click()
    expect(segments.nth(1)).to_contain_text("version 2 of 2")
    expect(segments).to_have_count(2)
    expect(page.locator("#usage-text")).to_have_text("3 of 5 used (free plan)")
    shot("regenerated")

    # End it.
    page.get_by_role("button", name="End the story").click()
    expect(page.get_by_text("The End", exact=True)).to_be_visible()
    expect(segments).to_have_count(3)
    expect(page.get_by_role("button", name="Continue")).to_be_hidden()
    expect(page.locator("#story-meta")).to_contain_text("complete")
    expect(page.locator("#usage-text")).to_have_text("4 of 5 used (free plan)")
    expect(page.get_by_role("status")).to_have_text("The story is complete.")
    shot("ended")

    # The list shows it; opening it from there shows the whole story.
    page.get_by_role("link", name="← All stories").click()
    stories = page.get_by_role("list", name="Stories").get_by_role("listitem")
    expect(stories).to_have_count(1)
    expect(stories.first).to_contain_text(title)
    expect(stories.first).to_contain_text("fantasy · 3 parts · complete")
    meter = page.get_by_label("Generations this period")
    assert meter.evaluate("m => [m.value, m.max]") == [4, 5]
    shot("list")
    stories.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(segments).to_have_count(3)

    # A reload keeps the session (this tab's storage); signing out forgets it.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Write a story with a model")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0

    # Signing in again, with a wrong password first: the problem is shown.
    signin = page.get_by_role("form", name="Sign in")
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill("not the password")
    signin.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("Authentication required"))
    shot("wrong-password")
    signin.get_by_label("Password").fill("correct horse battery")
    signin.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your stories")).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()
    expect(stories).to_have_count(1)

    assert not [e for e in page.console_errors if "401" not in e], page.console_errors


def sign_up(page, base_url: str) -> str:
    email = f"reader-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(base_url + "/app/")
    signup = page.get_by_role("form", name="Create an account")
    signup.get_by_label("Email").fill(email)
    signup.get_by_label("Password").fill("correct horse battery")
    signup.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your stories")).to_be_visible()
    return email


def open_section(page, base_url: str, link: str, heading: str) -> None:
    """A new user's first visit to one of the app's sections."""
    sign_up(page, base_url)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=link).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)


def test_the_council_stages_appear_as_they_happen(webapp_stack, browser_page, request):
    page = browser_page
    shot = Shots(page, request.node.name)
    open_section(page, webapp_stack.base_url, "Council", "Ask the council")

    page.get_by_label("Your question").fill("Who is the lighthouse keeper?")
    page.get_by_role("button", name="Ask").click()
    # The chairman asks first; each question has its answer field.
    questions = page.get_by_role("region", name="The chairman asks first")
    expect(questions).to_be_visible()
    expect(page.locator("#council-progress")).to_have_text(
        "The chairman has questions before the council deliberates."
    )
    fields = questions.get_by_role("textbox")
    expect(fields).to_have_count(2)
    shot("questions")
    fields.nth(0).fill("For a story set on the Breton coast")
    fields.nth(1).fill("To decide who narrates")
    page.get_by_role("button", name="Answer and let the council deliberate").click()
    # The first stage is shown while the council is still at work.
    answers = page.get_by_role("region", name="1. Answers")
    expect(answers).to_be_visible()
    expect(page.locator("#council-stages")).to_have_attribute("aria-busy", "true")
    shot("answering")
    expect(page.locator("#council-progress")).to_have_text("The council has answered.")
    expect(page.locator("#council-stages")).to_have_attribute("aria-busy", "false")
    assert answers.get_by_role("article").count() >= 2
    reviews = page.get_by_role("region", name="2. Reviews")
    expect(reviews.get_by_role("article").first).to_contain_text("Ranking: Response")
    chairman = page.get_by_role("region", name="3. The chairman's answer")
    expect(chairman.get_by_role("article")).to_have_count(1)
    assert chairman.get_by_role("article").locator("p").first.inner_text().strip()
    expect(page.locator("#usage-text")).to_have_text("1 of 5 used (free plan)")
    expect(questions).to_be_hidden()
    shot("answered")
    assert not page.console_errors, page.console_errors


def test_a_jobs_progress_is_watched_stage_by_stage(webapp_stack, browser_page, request):
    page = browser_page
    shot = Shots(page, request.node.name)
    open_section(page, webapp_stack.base_url, "Long-form", "Write a long piece")

    page.get_by_label("Premise").fill("A ferry arrives at dawn with nobody aboard.")
    page.get_by_label("Kind of piece").select_option("scene")
    page.get_by_label("Length in words").fill("150")
    page.get_by_role("button", name="Start the job").click()
    stages = page.get_by_role("list", name="Stages").get_by_role("listitem")
    expect(stages.first).to_contain_text("outline")
    expect(page.locator("#job-status")).to_contain_text("Writing:")
    shot("running")
    expect(page.locator("#job-status")).to_have_text("Done: the piece is written.", timeout=90_000)
    progress = page.get_by_label("Progress")
    assert progress.evaluate("p => p.value") == 100
    assert all("done" in text for text in stages.all_inner_texts())
    expect(page.get_by_role("region", name="Text being written")).not_to_be_empty()
    expect(page.locator("#job-cost")).to_contain_text("Cost so far $")
    shot("done")
    assert not page.console_errors, page.console_errors


def test_an_expired_access_token_is_refreshed_without_the_user_noticing(
    webapp_stack, browser_page
):
    page = browser_page
    sign_up(page, webapp_stack.base_url)

    # The access token stops working (as when it expires); the refresh token still does.
    page.evaluate(
        """() => {
            const tokens = JSON.parse(sessionStorage.getItem("fabula.tokens"));
            tokens.access_token = "expired." + tokens.access_token;
            sessionStorage.setItem("fabula.tokens", JSON.stringify(tokens));
        }"""
    )
    page.reload()
    expect(page.get_by_role("heading", name="Your stories")).to_be_visible()
    expect(page.locator("#usage-text")).to_have_text("0 of 5 used (free plan)")
    expect(page.get_by_role("alert")).to_be_hidden()
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('fabula.tokens')).access_token")
    assert not stored.startswith("expired.")


def test_the_app_is_served_with_a_content_security_policy(webapp_stack):
    with webapp_stack.client() as http:
        redirect = http.get("/app")
        assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/app/")
        page = http.get("/app/")
        script = http.get("/app/app.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["content-security-policy"] == policy
