"""The built-in offline provider: a deterministic text generator, NOT a language model.

It lets Fabula run end to end without a model provider (development, tests,
demos). It assembles prose from per-genre vocabulary and sentence templates,
using the story's characters, opening line, the writer's direction and the
kind of segment (an ending closes the story). The same request always gives
the same text: the choices are seeded from the subject id, the purpose, the number
of previous segments and the direction. It understands nothing it is given,
and every response it produces says so (is_language_model = false).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fabula_generation.generations.domain import GenerationRequest, Purpose
from fabula_generation.generations.text import count_tokens
from fabula_generation.providers.base import (
    Completion,
    ProviderEvent,
    ReportedUsage,
    StructuredRequest,
    TextChunk,
    prompt_text,
)

MIN_WORDS = 120
MAX_WORDS = 220
# Long user text is quoted only in part, so the segment keeps its length.
_MAX_OPENING_LINE_WORDS = 40
_MAX_DIRECTION_WORDS = 35


@dataclass(frozen=True)
class GenreVoice:
    """The vocabulary one genre is written with. Noun phrases carry their article."""

    names: tuple[str, str]
    places: tuple[str, ...]
    objects: tuple[str, ...]
    threats: tuple[str, ...]
    sounds: tuple[str, ...]
    lights: tuple[str, ...]
    lines: tuple[str, ...]
    resolutions: tuple[str, ...]
    closings: tuple[str, ...]
    title_adjectives: tuple[str, ...]
    title_nouns: tuple[str, ...]


VOICES: dict[str, GenreVoice] = {
    "fantasy": GenreVoice(
        names=("Maren", "Aldric"),
        places=(
            "the old keep above the river",
            "a forest where the trees still remembered their names",
            "the market square of Emberfall",
            "the ruined tower on the northern ridge",
        ),
        objects=(
            "a rune-carved key",
            "a map drawn in silver ink",
            "a sword that hummed in the dark",
            "a sealed letter bearing the royal crest",
        ),
        threats=(
            "the dragon's shadow",
            "the Hollow King's riders",
            "a curse older than the kingdom",
            "the storm-wolves of the high passes",
        ),
        sounds=(
            "the distant toll of a temple bell",
            "wings beating high above the clouds",
            "the murmur of old spells in the stones",
        ),
        lights=(
            "the glow of lanterns strung between the eaves",
            "moonlight on the river",
            "the last embers of the hearth",
        ),
        lines=(
            "We have until the moon is full.",
            "Magic always asks for something in return.",
            "The old roads are not safe anymore.",
        ),
        resolutions=(
            "spoke the last word of the old spell, and the curse broke like ice in spring",
            "laid the rune-carved key upon the altar and closed the door between the worlds",
            "gave up the crown that had never been theirs to keep",
        ),
        closings=(
            "And the old songs gained a new verse, sung softly by the hearths of the kingdom for "
            "years to come.",
            "The kingdom slept in peace, and the long night was over at last.",
        ),
        title_adjectives=("Silver", "Forgotten", "Last", "Hollow", "Burning"),
        title_nouns=("Crown", "Oath", "Tower", "Ember", "Key"),
    ),
    "science fiction": GenreVoice(
        names=("Vega", "Idris"),
        places=(
            "the observation deck of the Meridian",
            "a mining colony on the edge of the belt",
            "the neon-lit docks of Kepler Station",
            "a research outpost under an alien sky",
        ),
        objects=(
            "a data shard still warm from the reader",
            "an encrypted distress beacon",
            "a navigation core salvaged from a derelict",
            "a prototype drive no bigger than a fist",
        ),
        threats=(
            "the station's failing reactor",
            "a signal no one could explain",
            "the corporation's enforcement drones",
            "an approaching ion storm",
        ),
        sounds=(
            "the hum of the life-support fans",
            "a proximity alarm chirping in the dark",
            "the low thrum of the engines",
        ),
        lights=(
            "the cold blue glow of the console",
            "starlight through the viewport",
            "the emergency strips along the floor",
        ),
        lines=(
            "The numbers don't add up.",
            "We are not alone out here.",
            "Run the simulation again.",
        ),
        resolutions=(
            "rerouted the last of the power and brought the ship home on a whisper of thrust",
            "answered the signal, and for the first time, something answered back in kind",
            "uploaded the truth to every screen in the system before the drones could stop it",
        ),
        closings=(
            "Behind them the stars turned, patient and bright, as if they had known all along how "
            "it would end.",
            "The colony lights came on one by one, and the long silence between the worlds was "
            "broken.",
        ),
        title_adjectives=("Silent", "Distant", "Quantum", "Last", "Dark"),
        title_nouns=("Signal", "Orbit", "Horizon", "Station", "Drift"),
    ),
    "mystery": GenreVoice(
        names=("Inspector Hale", "Clara"),
        places=(
            "the rain-soaked streets of the old quarter",
            "a study that smelled of pipe smoke and secrets",
            "the village inn on the night of the storm",
            "the manor's locked library",
        ),
        objects=(
            "a torn train ticket",
            "a letter with its signature cut away",
            "a pocket watch stopped at a quarter past midnight",
            "a single muddy footprint",
        ),
        threats=(
            "a lie someone had told very carefully",
            "the killer's patience",
            "a witness who had suddenly vanished",
        ),
        sounds=(
            "the ticking of the hall clock",
            "footsteps on the floor above",
            "rain drumming on the windows",
        ),
        lights=(
            "the yellow circle of a desk lamp",
            "a gas lamp flickering in the fog",
            "the grey morning light",
        ),
        lines=(
            "Everyone in this house is hiding something.",
            "The clock is wrong. It has been wrong all along.",
            "Nobody leaves until we know the truth.",
        ),
        resolutions=(
            "laid the torn ticket beside the stopped watch, and the whole lie came apart in front "
            "of everyone",
            "named the killer, quietly, and watched the last mask fall",
            "found the missing page, and with it the answer that had been in plain sight from the "
            "start",
        ),
        closings=(
            "The case was closed, and the old house, for once, kept no more secrets.",
            "Outside, the rain finally stopped, and the town woke to an ordinary, honest morning.",
        ),
        title_adjectives=("Silent", "Crimson", "Last", "Hidden", "Broken"),
        title_nouns=("Witness", "Clock", "Alibi", "Letter", "Key"),
    ),
    "horror": GenreVoice(
        names=("Eli", "Rosa"),
        places=(
            "the farmhouse at the end of the flooded road",
            "a hospital wing that had been closed for years",
            "the cellar beneath the chapel",
            "a town where every clock had stopped",
        ),
        objects=(
            "a doll with its eyes scratched out",
            "a photograph in which someone had been added",
            "a key that was always cold",
            "a diary whose last pages were still wet",
        ),
        threats=(
            "something that breathed behind the walls",
            "the thing in the water",
            "a whisper that knew their names",
            "the figure at the end of the hall",
        ),
        sounds=(
            "a slow scraping beneath the floorboards",
            "a child's laughter from an empty room",
            "a door creaking open on its own",
        ),
        lights=(
            "a single guttering candle",
            "the flicker of a dying torch",
            "pale moonlight through broken shutters",
        ),
        lines=(
            "Don't look at it. Whatever you do, don't look at it.",
            "It was here before the house was.",
            "Did you hear that?",
        ),
        resolutions=(
            "set the farmhouse burning and did not look back at what screamed inside",
            "spoke its true name aloud, and the darkness let go",
            "locked the cellar door for the last time and threw the cold key into the river",
        ),
        closings=(
            "Dawn came grey and ordinary, and nothing scratched beneath the floor ever again.",
            "The house stood empty after that, and on quiet nights it almost seemed to be resting.",
        ),
        title_adjectives=("Hollow", "Cold", "Drowned", "Silent", "Last"),
        title_nouns=("House", "Whisper", "Cellar", "Doll", "Night"),
    ),
    "romance": GenreVoice(
        names=("Juliette", "Sam"),
        places=(
            "a small café on a street lined with linden trees",
            "the seaside town where summers never seemed to end",
            "a crowded rooftop party in the city",
            "the bookshop on the corner of the old square",
        ),
        objects=(
            "a handwritten note tucked into a borrowed book",
            "a pair of concert tickets",
            "a faded photograph from that first summer",
            "a ring kept in a coat pocket for far too long",
        ),
        threats=(
            "a letter of acceptance from a university across the ocean",
            "an old misunderstanding neither of them had forgotten",
            "the last train out of town",
        ),
        sounds=(
            "the soft clink of cups",
            "music drifting from an open window",
            "the sea breathing against the shore",
        ),
        lights=(
            "the warm afternoon light",
            "fairy lights strung between the balconies",
            "the gold of the setting sun",
        ),
        lines=(
            "I kept thinking about what you said.",
            "Stay. Just for tonight.",
            "I should have told you a long time ago.",
        ),
        resolutions=(
            "finally said the words out loud, and heard them said back",
            "missed the last train on purpose and never once regretted it",
            "opened the note at last and laughed, and cried, and said yes",
        ),
        closings=(
            "And whatever the years would bring, they would meet them together.",
            "The summer ended, as summers do, but what had begun in it did not.",
        ),
        title_adjectives=("Last", "Borrowed", "Golden", "Second", "Endless"),
        title_nouns=("Summer", "Letter", "Promise", "Chance", "Song"),
    ),
    "adventure": GenreVoice(
        names=("Jack Rourke", "Amara"),
        places=(
            "the jungle ruins of a forgotten city",
            "a tramp steamer bound for the southern islands",
            "the edge of a canyon wider than any map admitted",
            "the bazaar at the crossroads of three empires",
        ),
        objects=(
            "a compass that refused to point north",
            "half of a treasure map",
            "a coil of rope and a battered lantern",
            "a golden idol wrapped in oilcloth",
        ),
        threats=(
            "the rival expedition a day behind them",
            "the rising river",
            "the mercenaries of Captain Voss",
            "a rope bridge that had seen better centuries",
        ),
        sounds=(
            "the roar of a waterfall",
            "drums somewhere beyond the trees",
            "the creak of the ship's timbers",
        ),
        lights=(
            "the blaze of the noon sun",
            "torchlight on carved stone",
            "the first light over the horizon",
        ),
        lines=(
            "If the map is right, it's just past those cliffs.",
            "Nobody said it would be easy.",
            "Hold on to something!",
        ),
        resolutions=(
            "leapt the last gap as the bridge fell away behind them, the prize safe at last",
            "left the treasure where it lay and brought home something better: the way back",
            "outran the mercenaries to the coast and sailed out with the tide",
        ),
        closings=(
            "Far behind them, the jungle closed over the old city again, keeping its last secrets "
            "for the next brave fool.",
            "The map went into a drawer, the compass into a pocket, and the story into every "
            "tavern on the coast.",
        ),
        title_adjectives=("Lost", "Golden", "Forbidden", "Last", "Hidden"),
        title_nouns=("Expedition", "Idol", "Compass", "River", "City"),
    ),
    "generic": GenreVoice(
        names=("Alex", "Jordan"),
        places=(
            "the town at the edge of the valley",
            "a quiet street after the rain",
            "the house where they had grown up",
            "the station platform at dusk",
        ),
        objects=(
            "an old letter",
            "a key nobody could place",
            "a photograph with a date on the back",
            "a small wooden box",
        ),
        threats=(
            "a decision that could not wait",
            "a secret that was finally coming out",
            "the end of everything familiar",
        ),
        sounds=(
            "the distant sound of a train",
            "voices from the next room",
            "the wind against the windows",
        ),
        lights=(
            "the evening light",
            "a lamp left burning in the window",
            "the pale light of early morning",
        ),
        lines=(
            "We can't keep pretending.",
            "Whatever happens, we face it together.",
            "I never thought it would come to this.",
        ),
        resolutions=(
            "made the choice at last and, for the first time, felt certain of it",
            "opened the box and let the past be what it was",
            "said goodbye to the old house and walked out into the light",
        ),
        closings=(
            "Life went on, as it does, a little wiser and a little kinder than before.",
            "And that, in the end, was enough.",
        ),
        title_adjectives=("Quiet", "Last", "Long", "Small", "Open"),
        title_nouns=("Road", "Letter", "Light", "Door", "Season"),
    ),
}

# Genre words mapped to a voice; matched against the words of the story's genre.
_GENRE_ALIASES: tuple[tuple[str, str], ...] = (
    ("science fiction", "science fiction"),
    ("sci-fi", "science fiction"),
    ("scifi", "science fiction"),
    ("sf", "science fiction"),
    ("space", "science fiction"),
    ("cyberpunk", "science fiction"),
    ("fantasy", "fantasy"),
    ("fairy", "fantasy"),
    ("mystery", "mystery"),
    ("detective", "mystery"),
    ("crime", "mystery"),
    ("noir", "mystery"),
    ("thriller", "mystery"),
    ("horror", "horror"),
    ("ghost", "horror"),
    ("gothic", "horror"),
    ("romance", "romance"),
    ("love", "romance"),
    ("romantic", "romance"),
    ("adventure", "adventure"),
    ("action", "adventure"),
    ("pirate", "adventure"),
)


def voice_key_for(genre: str) -> str:
    normalised = " " + re.sub(r"[^a-z-]+", " ", genre.lower()).strip() + " "
    for alias, key in _GENRE_ALIASES:
        if f" {alias} " in normalised:
            return key
    return "generic"


# Sentence templates shared by every genre. Slots: {name} and {other} (the
# characters), {desc} (", <description>," or nothing), {place}, {object},
# {threat}, {sound}, {light}, {line}, {resolution}, {direction}; a capitalised
# slot ({Place}, {Light}) starts a sentence.
SCENES = (
    "{Place} was quiet at this hour, but tonight {sound} carried further than it should have.",
    "Under {light}, {place} looked almost peaceful.",
    "In {place}, everyone knew the old stories about {threat}, and almost nobody believed them "
    "anymore.",
    "The wind moved through {place} like someone searching for a lost name.",
)
INTRODUCTIONS = (
    "{name}{desc} had promised never to come back here, and yet here {name} was.",
    "{name}{desc} noticed it first: {sound}, faint at first and then impossible to ignore.",
    "For {name}{desc}, the day had begun like any other.",
)
COMPANIONS = (
    "{other} was already waiting, eyes fixed on the door.",
    "Beside {name}, {other} said nothing, which was never a good sign.",
    "{other} arrived late and out of breath, with news that could not wait.",
)
ACTIONS = (
    "Then {name} found {object}, and nothing was simple anymore.",
    "{name} turned {object} over and over, as if it might explain itself.",
    "By the time {name} understood what {object} meant, {threat} was closer than anyone had "
    "guessed.",
    "{name} followed {sound} deeper into {place}.",
)
# {line} is a spoken line ending in a comma, question or exclamation mark.
DIALOGUE = (
    '"{line}" {name} said quietly.',
    '"{line}" {other} whispered.',
)
DETAILS = (
    "{Light} made every shadow look deeper than it was.",
    "Somewhere nearby, {sound} rose and fell.",
    "{name} counted heartbeats and tried to think clearly.",
    "It was the kind of silence that made the smallest sound seem like a warning.",
    "Every choice from here on would cost something.",
    "{name} thought of home, and of how far away it suddenly seemed.",
    "There was no time to wait for help.",
    "{other} caught {name}'s eye and gave the smallest of nods.",
)
# Calmer details for the end of a final segment.
SETTLINGS = (
    "The silence that followed was a gentle one.",
    "{name} breathed out slowly, and the trembling finally stopped.",
    "Nothing would ever be quite the same, and that was all right.",
    "{other} laughed, tired and astonished, and {name} laughed too.",
    "{Light} fell softly over everything.",
    "Somewhere, {sound} faded into nothing.",
)
TENSIONS = (
    "But {threat} had not finished with them yet.",
    "Far off, {sound} began again, closer this time.",
    "Whatever happened next, there would be no going back.",
)
BRIDGES = (
    "{name} did not sleep much that night.",
    "Morning came slowly, grey and uncertain.",
    "It took {name} a long moment to understand what had just happened.",
    "Hours later, the memory of {object} still would not let {name} rest.",
)
DIRECTIONS = (
    "Then the story turned, the way stories do: {direction}",
    "What happened next changed everything: {direction}",
    "{name} would remember this as the moment everything shifted: {direction}",
)
HOOKS = (
    "{name} took a breath and stepped forward, into whatever was waiting.",
    "And somewhere in the dark, something was waiting for {name} too.",
    "It was only the beginning.",
)
CLIMAXES = (
    "Everything came down to this moment, and {name} did not look away.",
    "{name} and {other} faced {threat} together, and this time they did not run.",
)
AFTERMATHS = (
    "Nothing remained of {threat}, and {place} was quiet at last.",
    "Later, when people told the story, they would get the details wrong, but never the ending.",
    "{name} and {other} stood together under {light}, and for the first time in a long while, "
    "neither of them was afraid.",
)
TITLES = ("The {adjective} {noun}", "{name} and the {adjective} {noun}")
THE_END = "The End."


@dataclass(frozen=True)
class Character:
    name: str
    description: str = ""


def parse_character(entry: str) -> Character | None:
    """Split "Mara, a lighthouse keeper" into a name and a description."""
    entry = " ".join(entry.split())
    name, description = entry, ""
    for separator in (",", " - ", " — ", ":", "("):
        if separator in entry:
            name, description = entry.split(separator, 1)
            break
    name, description = name.strip(), description.strip(" )")
    if not name:
        return None
    return Character(name=name, description=description)


def _words(text: str) -> int:
    return len(text.split())


def _first_words(text: str, limit: int) -> str:
    words = text.split()
    if len(words) <= limit:
        return " ".join(words)
    return " ".join(words[:limit]).rstrip(",;:-") + "…"


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…", '"', "”")) else text + "."


def _spoken(line: str) -> str:
    """A line as quoted before "she said": a final full stop becomes a comma."""
    return line[:-1] + "," if line.endswith(".") else line


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def story_seed(request: GenerationRequest) -> int:
    """Stable across processes (unlike hash()): same request, same text."""
    key = "\x1f".join(
        (
            request.subject.id,
            request.purpose.value,
            str(len(request.story.previous_segments)),
            request.direction,
        )
    )
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


class OfflineStoryteller:
    """Composes a segment (and a title line when asked) for one request."""

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.rng = random.Random(story_seed(request))
        self.voice = VOICES[voice_key_for(request.story.genre)]
        characters = [c for c in map(parse_character, request.story.characters) if c is not None]
        fallback = [Character(name) for name in self.voice.names]
        self.main = characters[0] if characters else fallback[0]
        self.other = (
            characters[1]
            if len(characters) > 1
            else (fallback[1] if fallback[1].name != self.main.name else fallback[0])
        )
        # One choice per slot for the whole segment, so it stays about one thing.
        self.slots = {
            "name": self.main.name,
            "other": self.other.name,
            "place": self.rng.choice(self.voice.places),
            "object": self.rng.choice(self.voice.objects),
            "threat": self.rng.choice(self.voice.threats),
            "sound": self.rng.choice(self.voice.sounds),
            "light": self.rng.choice(self.voice.lights),
            "line": _spoken(self.rng.choice(self.voice.lines)),
            "resolution": self.rng.choice(self.voice.resolutions),
        }
        for slot in ("place", "light"):
            self.slots[slot.capitalize()] = _capitalised(self.slots[slot])

    def compose(self) -> str:
        """The raw output: an optional "Title: ..." line, then the segment."""
        body = self._segment()
        if self.request.want_title:
            return f"Title: {self._title()}\n\n{body}"
        return body

    def _fill(self, template: str, **extra: str) -> str:
        return template.format(**self.slots, desc="", **extra)

    def _pick(self, templates: tuple[str, ...], **extra: str) -> str:
        return self._fill(self.rng.choice(templates), **extra)

    def _direction(self) -> str | None:
        direction = " ".join(self.request.direction.split())
        if not direction:
            return None
        quoted = _as_sentence(_first_words(direction, _MAX_DIRECTION_WORDS))
        return self._pick(DIRECTIONS, direction=quoted)

    def _introduction(self) -> str:
        desc = f", {self.main.description}," if self.main.description else ""
        sentence = self.rng.choice(INTRODUCTIONS).format(**{**self.slots, "desc": desc})
        return sentence.replace(",,", ",").replace(",:", ":")

    def _segment(self) -> str:
        purpose = self.request.purpose
        direction = self._direction()
        first: list[str] = []
        second: list[str] = []
        closing: list[str] = []
        if purpose is Purpose.story_opening:
            opening_line = " ".join(self.request.story.opening_line.split())
            if opening_line:
                first.append(_as_sentence(_first_words(opening_line, _MAX_OPENING_LINE_WORDS)))
            first += [self._pick(SCENES), self._introduction(), self._pick(COMPANIONS)]
            second += [self._pick(ACTIONS), self._pick(DIALOGUE)]
            if direction:
                second.append(direction)
            closing = [self._pick(HOOKS)]
        elif purpose is Purpose.story_continuation:
            first += [self._pick(BRIDGES), self._pick(ACTIONS)]
            second += [self._pick(DIALOGUE)]
            if direction:
                second.append(direction)
            closing = [self._pick(TENSIONS)]
        else:
            first += [self._pick(BRIDGES)]
            if direction:
                first.append(direction)
            first.append(self._pick(CLIMAXES))
            second += [self._fill("In the end, {name} {resolution}."), self._pick(AFTERMATHS)]
            closing = [self.rng.choice(self.voice.closings)]

        if purpose is Purpose.story_ending:
            self._pad(first, second, closing, pools=(DETAILS + TENSIONS, SETTLINGS))
        else:
            self._pad(first, second, closing, pools=(DETAILS + TENSIONS, DETAILS + TENSIONS))
        paragraphs = [" ".join(first), " ".join(second + closing)]
        if purpose is Purpose.story_ending:
            paragraphs.append(THE_END)
        return "\n\n".join(paragraphs)

    def _pad(
        self,
        first: list[str],
        second: list[str],
        closing: list[str],
        pools: tuple[tuple[str, ...], tuple[str, ...]],
    ) -> None:
        """Add detail sentences, alternating between the two paragraphs, until
        the segment reaches its (seeded) target length."""
        target = self.rng.randint(MIN_WORDS + 20, MAX_WORDS - 20)
        reserve = _words(THE_END) if self.request.purpose is Purpose.story_ending else 0
        count = sum(map(_words, first + second + closing)) + reserve
        used = set(first + second + closing)
        queues = []
        for paragraph, pool in zip((first, second), pools, strict=True):
            sentences = [s for s in dict.fromkeys(self._fill(t) for t in pool) if s not in used]
            self.rng.shuffle(sentences)
            queues.append((paragraph, sentences))
        turn = 0
        while count < target and any(sentences for _, sentences in queues):
            paragraph, sentences = queues[turn % 2]
            turn += 1
            if not sentences:
                continue
            sentence = sentences.pop()
            if sentence in used or count + _words(sentence) > MAX_WORDS:
                continue
            # The first paragraph keeps its last sentence last: it leads on.
            paragraph.insert(len(paragraph) - 1 if paragraph is first else len(paragraph), sentence)
            used.add(sentence)
            count += _words(sentence)

    def _title(self) -> str:
        template = self.rng.choice(TITLES)
        return template.format(
            name=self.main.name,
            adjective=self.rng.choice(self.voice.title_adjectives),
            noun=self.rng.choice(self.voice.title_nouns),
        )


def _context_text(request: GenerationRequest) -> str:
    story = request.story
    return "\n".join(
        [
            story.genre,
            story.title,
            *story.characters,
            story.opening_line,
            story.memory,
            *story.lore,
            *story.previous_segments,
            story.authors_note,
            request.direction,
        ]
    )


class OfflineProvider:
    """Deterministic built-in text generator; NOT a language model.

    Tokens are words and punctuation marks, counted exactly (counts_tokens_exactly):
    the prompt is the story context it was given, the completion what it wrote.
    """

    name = "offline"
    model = "offline"
    is_language_model = False
    counts_tokens_exactly = True

    def __init__(self, token_delay_seconds: float = 0.0) -> None:
        self.token_delay_seconds = token_delay_seconds

    def compose(self, request: GenerationRequest) -> str:
        if request.prompt is not None:
            return request.prompt.offline_text
        return OfflineStoryteller(request).compose()

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        if request.prompt is not None:
            return count_tokens(f"{request.prompt.system}\n{request.prompt.user}")
        return count_tokens(_context_text(request))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderEvent, None]:
        text = self.compose(request)
        # Word by word, each piece carrying the whitespace before it.
        for piece in re.findall(r"\s*\S+", text):
            if self.token_delay_seconds:
                await asyncio.sleep(self.token_delay_seconds)
            yield TextChunk(piece)
        yield ReportedUsage(self.count_prompt_tokens(request), count_tokens(text))

    async def complete(self, request: GenerationRequest) -> Completion:
        text = self.compose(request)
        return Completion(
            text, ReportedUsage(self.count_prompt_tokens(request), count_tokens(text))
        )

    async def complete_json(self, request: StructuredRequest) -> Completion:
        """The request's own offline answer (it reads no prompt); its tokens are
        those of the messages a model would get and of the JSON written."""
        text = json.dumps(request.offline_answer(), ensure_ascii=False)
        prompt = prompt_text(request.messages())
        return Completion(text, ReportedUsage(count_tokens(prompt), count_tokens(text)))

    async def aclose(self) -> None:
        return None
