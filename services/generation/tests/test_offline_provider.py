"""The offline provider, title parsing, token counting and prices (no I/O)."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from fabula_common.errors import InvalidArgument
from fabula_generation.generations.domain import (
    STORY_PURPOSES,
    GenerationRequest,
    Outcome,
    Purpose,
    StoryInputs,
    Subject,
)
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.service import (
    GenerationCall,
    stream_generation,
    validate_request,
)
from fabula_generation.generations.text import TitleSplitter, count_tokens
from fabula_generation.providers import OfflineProvider, ReportedUsage, TextChunk
from fabula_generation.providers.offline import VOICES
from fabula_generation.settings import DEFAULT_FALLBACK_PRICE, ModelPrice, Settings

GENRES = ["fantasy", "science fiction", "mystery", "horror", "romance", "adventure"]


def genre_phrases(voice_key: str) -> set[str]:
    voice = VOICES[voice_key]
    return {
        p.lower()
        for p in (*voice.places, *voice.objects, *voice.threats, *voice.sounds, *voice.lights)
    }


def phrases_used(text: str, voice_key: str) -> set[str]:
    return {phrase for phrase in genre_phrases(voice_key) if phrase in text.lower()}


def request(
    kind: Purpose = Purpose.story_opening,
    *,
    story_id: str = "story-1",
    genre: str = "fantasy",
    characters: tuple[str, ...] = ("Mara, a lighthouse keeper", "Tom"),
    opening_line: str = "",
    previous_segments: tuple[str, ...] = (),
    direction: str = "",
    want_title: bool = False,
) -> GenerationRequest:
    return GenerationRequest(
        user_id="user-1",
        purpose=kind,
        subject=Subject("story", story_id),
        story=StoryInputs(
            genre=genre,
            title="",
            characters=characters,
            opening_line=opening_line,
            previous_segments=previous_segments,
        ),
        direction=direction,
        want_title=want_title,
    )


async def streamed(
    provider: OfflineProvider, req: GenerationRequest
) -> tuple[list[str], ReportedUsage]:
    pieces, usage = [], None
    async for event in provider.stream(req):
        if isinstance(event, TextChunk):
            pieces.append(event.text)
        else:
            usage = event
    assert usage is not None
    return pieces, usage


def test_the_same_request_gives_the_same_text_and_other_inputs_change_it():
    provider = OfflineProvider()
    base = request(direction="Mara opens the sealed door")
    assert provider.compose(base) == provider.compose(
        request(direction="Mara opens the sealed door")
    )

    variations = [
        request(story_id="story-2", direction="Mara opens the sealed door"),
        request(Purpose.story_continuation, direction="Mara opens the sealed door"),
        request(direction="Tom runs for help"),
        request(previous_segments=("Before.",), direction="Mara opens the sealed door"),
    ]
    for varied in variations:
        assert provider.compose(varied) != provider.compose(base)


@pytest.mark.parametrize("genre", GENRES)
def test_writes_with_the_vocabulary_of_the_genre(genre):
    provider = OfflineProvider()
    for index in range(5):
        text = provider.compose(request(genre=genre, story_id=f"story-{index}"))
        assert len(phrases_used(text, genre)) >= 3, text
        for other in VOICES.keys() - {genre}:
            assert not phrases_used(text, other), f"{genre} text borrows from {other}: {text}"


def test_genre_names_are_recognised_loosely_with_a_generic_fallback():
    provider = OfflineProvider()
    assert phrases_used(provider.compose(request(genre="Sci-Fi thriller")), "science fiction")
    assert phrases_used(provider.compose(request(genre="Detective story")), "mystery")
    assert phrases_used(provider.compose(request(genre="slice of life")), "generic")
    assert phrases_used(provider.compose(request(genre="")), "generic")


def test_uses_the_characters_opening_line_and_direction():
    provider = OfflineProvider()
    text = provider.compose(
        request(
            characters=("Mara, a lighthouse keeper", "Tom"),
            opening_line="The fog came in at noon",
            direction="Mara finds the lost ship",
        )
    )
    assert text.startswith("The fog came in at noon.")
    assert "Mara, a lighthouse keeper," in text
    assert "Tom" in text
    assert "Mara finds the lost ship." in text


def test_invents_characters_when_the_story_has_none():
    text = OfflineProvider().compose(request(characters=(), genre="fantasy"))
    assert "Maren" in text and "Aldric" in text


@pytest.mark.parametrize("kind", sorted(STORY_PURPOSES))
@pytest.mark.parametrize("genre", [*GENRES, "other"])
def test_segments_are_120_to_220_words(kind, genre):
    provider = OfflineProvider()
    for index in range(10):
        text = provider.compose(
            request(
                kind,
                genre=genre,
                story_id=f"s{index}",
                direction="x " * 500,
                opening_line="y " * 500,
            )
        )
        assert 120 <= len(text.split()) <= 220, text


def test_an_ending_reads_like_an_ending():
    provider = OfflineProvider()
    for index in range(5):
        ending = provider.compose(request(Purpose.story_ending, story_id=f"s{index}"))
        assert ending.endswith("The End.")
        assert "In the end, Mara " in ending
        continuation = provider.compose(request(Purpose.story_continuation, story_id=f"s{index}"))
        assert "The End" not in continuation and "In the end" not in continuation


def test_a_title_line_comes_first_when_asked_for():
    provider = OfflineProvider()
    with_title = provider.compose(request(want_title=True))
    title_line, blank, *_ = with_title.split("\n")
    assert re.fullmatch(r"Title: \S.*", title_line) and blank == ""
    assert not provider.compose(request()).startswith("Title:")


async def test_streams_word_by_word_and_counts_tokens_exactly():
    provider = OfflineProvider()
    req = request(direction="Mara opens the sealed door", previous_segments=("It was late.",))
    pieces, usage = await streamed(provider, req)

    text = "".join(pieces)
    assert text == provider.compose(req)
    assert len(pieces) == len(text.split())
    assert usage.completion_tokens == count_tokens(text) > len(pieces)  # words and punctuation
    context = "fantasy Mara, a lighthouse keeper Tom It was late. Mara opens the sealed door"
    assert usage.prompt_tokens == count_tokens(context) == 16


async def test_the_token_delay_paces_the_stream():
    provider = OfflineProvider(token_delay_seconds=0.002)
    started = time.monotonic()
    pieces, _ = await streamed(provider, request())
    assert time.monotonic() - started >= 0.002 * len(pieces)


async def test_a_call_separates_the_title_and_reports_exact_usage():
    provider = OfflineProvider()
    call = GenerationCall(request(want_title=True), provider)
    deltas = [delta async for delta in stream_generation(call)]

    assert call.title and not call.title.startswith("Title")
    assert "".join(deltas).strip() == call.text
    assert not call.text.startswith("Title")
    usage = call.usage(Outcome.completed)
    assert not usage.estimated
    assert usage.completion_tokens == count_tokens(provider.compose(call.request))


async def test_an_abandoned_offline_call_counts_what_was_produced():
    provider = OfflineProvider()
    call = GenerationCall(request(), provider)
    stream = stream_generation(call)
    first = await anext(stream)
    second = await anext(stream)
    await stream.aclose()

    usage = call.usage(Outcome.cancelled)
    assert usage.completion_tokens == count_tokens(first + second) > 0
    assert usage.prompt_tokens == provider.count_prompt_tokens(call.request)
    assert not usage.estimated  # the offline provider's own measure


@pytest.mark.parametrize(
    ("chunks", "title", "text"),
    [
        (["Title: The Long Night\n\nOnce upon a time."], "The Long Night", "Once upon a time."),
        (["Ti", "tle", ": Sea", "rs\n", "\n", "Once", " upon"], "Sears", "Once upon"),
        (['**Title:** "Ashes"\nThe fire was out.'], "Ashes", "The fire was out."),
        (["\n# Title: Ashes\n\nThe fire was out."], "Ashes", "The fire was out."),
        (["Once upon a time."], "", "Once upon a time."),
        (["Tidal waves came.\nThen more."], "", "Tidal waves came.\nThen more."),
        (["Title: Only a title"], "Only a title", ""),
    ],
)
def test_title_splitter(chunks, title, text):
    splitter = TitleSplitter(expect_title=True)
    out = "".join(splitter.feed(chunk) for chunk in chunks) + splitter.finish()
    assert (splitter.title, out) == (title, text)


def test_title_splitter_passes_text_through_when_no_title_is_expected():
    splitter = TitleSplitter(expect_title=False)
    assert splitter.feed("Title: not parsed\n") == "Title: not parsed\n"
    assert splitter.title == ""


def test_count_tokens_counts_words_and_punctuation():
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("Don't stop—the sea-wolves are here.") == 8
    assert count_tokens("") == 0


def test_prices_per_million_tokens_with_a_fallback_for_unknown_models():
    prices = PriceTable.from_settings(
        Settings(prices={"house-model": ModelPrice(prompt=Decimal("1.5"), completion=Decimal("3"))})
    )
    assert prices.cost("offline", 1000, 1000) == 0
    assert prices.cost("mistral-small-latest", 1_000_000, 1_000_000) == Decimal("0.4")
    assert prices.cost("house-model", 200, 300) == Decimal("0.0012")
    assert prices.cost("mistral-small-latest", 1, 1) == Decimal("0.0000004")
    fallback = DEFAULT_FALLBACK_PRICE
    assert (
        prices.cost("unknown-model", 1000, 2000)
        == (1000 * fallback.prompt + 2000 * fallback.completion) / 10**6
    )


def test_prices_and_fallback_come_from_json_settings(monkeypatch):
    monkeypatch.setenv(
        "GENERATION_PRICES_JSON", '{"mistral-small-latest": {"prompt": "1", "completion": "2"}}'
    )
    monkeypatch.setenv("GENERATION_FALLBACK_PRICE_JSON", '{"prompt": "10", "completion": "20"}')
    prices = PriceTable.from_settings(Settings())
    assert prices.cost("mistral-small-latest", 10**6, 10**6) == 3
    assert prices.cost("mistral-large-latest", 10**6, 10**6) == 8  # defaults still apply
    assert prices.cost("mystery-model", 10**6, 10**6) == 30


def test_provider_choice(monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    assert Settings().resolved_provider == "offline"
    assert Settings(mistral_api_key="sk-test").resolved_provider == "mistral"
    assert Settings(mistral_api_key="sk-test", provider="offline").resolved_provider == "offline"
    with pytest.raises(ValueError, match="MISTRAL_API_KEY"):
        Settings(provider="mistral")
    with pytest.raises(ValueError, match="MISTRAL_API_KEY"):
        Settings(provider="mistral", mistral_api_key="  ")


def test_a_model_name_too_long_to_record_is_refused_at_startup(monkeypatch):
    # Every call would be made, then fail to be recorded (and so to be billed).
    monkeypatch.setenv("MISTRAL_MODEL", "m" * 129)
    with pytest.raises(ValueError, match="MISTRAL_MODEL"):
        Settings()
    monkeypatch.setenv("MISTRAL_MODEL", "m" * 128)
    assert Settings().mistral_model == "m" * 128


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"user_id": ""}, "user_id is required"),
        ({"subject": Subject(" ", "story-1")}, "subject.kind is required"),
        ({"subject": Subject("story", "s" * 65)}, "subject.id must be at most 64"),
        ({"direction": "d" * 4001}, "direction must be at most 4000"),
        ({"story": StoryInputs(genre="g" * 101)}, "story.genre"),
        ({"story": StoryInputs(characters=("c",) * 21)}, "story.characters"),
        ({"story": StoryInputs(previous_segments=("p" * 60_000,) * 2)}, "story context"),
    ],
)
def test_requests_are_validated(changes, message):
    valid = request()
    validate_request(valid)
    fields = {**valid.__dict__, **changes}
    with pytest.raises(InvalidArgument, match=message):
        validate_request(GenerationRequest(**fields))
