"""The prompt a language model gets for story ideas, in English or German.
The answer's shape is held by the schema (structured output); the prompt
says what makes a good idea."""

from __future__ import annotations

from fabula_generation.suggestions.domain import SuggestionRequest

_SYSTEM = {
    "en": (
        "You are Fabula, a co-writing assistant who suggests ideas for new stories. Each "
        "idea has a short, evocative title, its genre, two or three named characters (each "
        'as "Name, a short description") and an opening line that draws the reader in. '
        "Make the ideas differ from one another in premise, setting and tone. Write in "
        "English. Answer with JSON only, following the given schema."
    ),
    "de": (
        "Du bist Fabula, eine Schreibassistenz, die Ideen für neue Geschichten vorschlägt. "
        "Jede Idee hat einen kurzen, eindringlichen Titel, ihr Genre, zwei oder drei "
        'benannte Figuren (jeweils als "Name, eine kurze Beschreibung") und einen ersten '
        "Satz, der die Leser in die Geschichte zieht. Die Ideen sollen sich in Prämisse, "
        "Schauplatz und Ton unterscheiden. Schreibe auf Deutsch. Antworte nur mit JSON "
        "nach dem vorgegebenen Schema."
    ),
}


def _task(request: SuggestionRequest) -> str:
    if request.locale == "de":
        genre = (
            f"im Genre „{request.genre}“" if request.genre else "in verschiedenen Genres"
        )
        return f"Schlage genau {request.count} Ideen für Geschichten {genre} vor."
    genre = f"in the genre “{request.genre}”" if request.genre else "in a variety of genres"
    noun = "idea" if request.count == 1 else "ideas"
    return f"Suggest exactly {request.count} story {noun} {genre}."


def suggestion_messages(request: SuggestionRequest) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": _SYSTEM[request.locale]},
        {"role": "user", "content": _task(request)},
    ]
