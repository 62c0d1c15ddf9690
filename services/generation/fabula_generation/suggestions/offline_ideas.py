"""Story ideas from the built-in offline generator, NOT a language model.

Each idea is assembled from the offline provider's per-genre vocabulary
(places, objects, threats, sounds, title words) with a name pool, roles per
genre and opening-line templates. The same request with the same seed gives
the same ideas; the service seeds each call with its generation id, so calls
differ. English only: a German request gets English ideas from it (the
language models write German).
"""

from __future__ import annotations

import hashlib
import random

from fabula_generation.providers.offline import VOICES, GenreVoice, voice_key_for
from fabula_generation.suggestions.domain import StoryIdea, SuggestionRequest

# The genres ideas are spread over when the request names none.
GENRES = ("fantasy", "science fiction", "mystery", "horror", "romance", "adventure")

NAMES = (
    "Mara", "Tobias", "Ines", "Kofi", "Lena", "Rafael", "Yuki", "Oskar", "Priya", "Dmitri",
    "Noor", "Elias", "Saoirse", "Mateo", "Ada", "Hamid", "Freya", "Jonah", "Ayla", "Bram",
    "Celeste", "Wren", "Tariq", "Liesel",
)  # fmt: skip

ROLES = {
    "fantasy": (
        "an exiled knight", "a hedge witch", "a royal cartographer", "a disgraced heir",
        "a dragon's keeper", "a thief with a conscience",
    ),
    "science fiction": (
        "a salvage pilot", "the ship's reluctant AI", "a xenobiologist", "a station mechanic",
        "a smuggler on the outer rim", "a cadet on a first posting",
    ),
    "mystery": (
        "a retired inspector", "a night-shift journalist", "a pawnbroker", "a forensic "
        "accountant", "a village postmistress", "a magician who hates magic",
    ),
    "horror": (
        "a night nurse", "a lighthouse keeper", "a folklorist", "a recently bereaved neighbour",
        "a child who sees too much", "the new vicar",
    ),
    "romance": (
        "a florist", "a wedding photographer", "a travelling violinist", "a bookshop owner",
        "a chef starting over", "an architect with a deadline",
    ),
    "adventure": (
        "a treasure hunter", "a mountain guide", "a river pilot", "a young stowaway",
        "a disgraced explorer", "a cartographer's daughter",
    ),
    "generic": (
        "a schoolteacher", "a retired sailor", "a young doctor", "a night-shift baker",
        "the heir to a crumbling house", "a stranger in town",
    ),
}  # fmt: skip

TITLES = (
    "The {adjective} {noun}",
    "{name} and the {adjective} {noun}",
    "{name}'s {noun}",
)
OPENINGS = (
    "{Name} had sworn never to set foot in {place} again, but {object} changed that.",
    "The night {sound} returned, {name} was the only one awake in {place}.",
    "Everyone knew the stories about {threat}, and {name} had stopped believing them "
    "long ago.",
    "It began with {object}, left on {name}'s doorstep without a note.",
    "Under {light}, {name} finally understood what {other} had been hiding.",
    "{Name} found {object} on the first day of spring, and by nightfall nowhere in {place} "
    "was safe.",
    "Nobody in {place} had heard {sound} in a hundred years, until {name} came home.",
)
MAX_ATTEMPTS = 20


def _seed(request: SuggestionRequest) -> int:
    """Stable across processes (unlike hash())."""
    key = f"{request.seed}\x1f{request.genre}\x1f{request.count}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _idea(
    rng: random.Random, genre: str, voice_key: str, used_names: set[str], opening: str
) -> StoryIdea:
    voice: GenreVoice = VOICES[voice_key]
    count = rng.choice((2, 3))
    # Names not given to another idea of the answer while there are enough.
    fresh = [name for name in NAMES if name not in used_names]
    names = rng.sample(fresh if len(fresh) >= count else NAMES, k=count)
    used_names.update(names)
    roles = rng.sample(ROLES[voice_key], k=len(names))
    slots = {
        "name": names[0],
        "Name": names[0],
        "other": names[1],
        "place": rng.choice(voice.places),
        "object": rng.choice(voice.objects),
        "threat": rng.choice(voice.threats),
        "sound": rng.choice(voice.sounds),
        "light": rng.choice(voice.lights),
    }
    title = rng.choice(TITLES).format(
        name=names[0],
        adjective=rng.choice(voice.title_adjectives),
        noun=rng.choice(voice.title_nouns),
    )
    return StoryIdea(
        title=title,
        genre=genre,
        characters=[f"{name}, {role}" for name, role in zip(names, roles, strict=True)],
        opening_line=_capitalised(opening.format(**slots)),
    )


def compose_ideas(request: SuggestionRequest) -> list[StoryIdea]:
    """`request.count` ideas with distinct titles and opening lines, in the
    requested genre (its vocabulary when the genre is one it knows) or spread
    over GENRES."""
    rng = random.Random(_seed(request))
    genres = list(GENRES)
    rng.shuffle(genres)
    # Each idea of an answer opens in another way, while there are enough.
    openings = list(OPENINGS)
    rng.shuffle(openings)
    ideas: list[StoryIdea] = []
    used_names: set[str] = set()
    for index in range(request.count):
        genre = request.genre or genres[index % len(genres)]
        voice_key = voice_key_for(genre)
        opening = openings[index % len(openings)]
        for _ in range(MAX_ATTEMPTS):
            idea = _idea(rng, genre, voice_key, used_names, opening)
            if all(
                idea.title != other.title and idea.opening_line != other.opening_line
                for other in ideas
            ):
                break
        ideas.append(idea)
    return ideas
