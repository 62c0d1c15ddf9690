"""The offline generator's picture story: deterministic text composed from
the image's facts (main colours, shape) and the direction. It looks at
nothing but those facts and is NOT a language model; the answer says so
(is_language_model false, provider "offline")."""

from __future__ import annotations

import hashlib
import random

from fabula_generation.pictures.facts import ImageFacts

_HEROES = (
    ("a small fox", "ein kleiner Fuchs"),
    ("a curious robot", "ein neugieriger Roboter"),
    ("a brave snail", "eine mutige Schnecke"),
    ("a friendly dragon", "ein freundlicher Drache"),
)
_PLACES = {
    "wide": ("across a wide meadow", "über eine weite Wiese"),
    "tall": ("up a tall tower", "auf einen hohen Turm"),
    "square": ("around a cosy garden", "durch einen gemütlichen Garten"),
}


def compose_story(facts: ImageFacts, direction: str, seed: str) -> dict[str, str]:
    """Title and text in English and German; the same facts, direction and
    seed always give the same story."""
    rng = random.Random(hashlib.sha256(f"{seed}|{direction}".encode()).hexdigest())
    hero_en, hero_de = rng.choice(_HEROES)
    place_en, place_de = _PLACES[facts.orientation]
    colours = facts.colours or ()
    first = colours[0] if colours else None
    colour_en = first.en if first else "bright"
    colour_de = first.de.capitalize() if first else "Farbe"
    others_en = " and ".join(colour.en for colour in colours[1:]) or "light"
    others_de = " und ".join(colour.de.capitalize() for colour in colours[1:]) or "Licht"
    wish_en = f' The artist wished: "{direction}".' if direction else ""
    wish_de = f' Der Wunsch des Künstlers: „{direction}“.' if direction else ""
    text_en = (
        f"Once upon a time, in a picture full of {colour_en}, {hero_en} set off {place_en}."
        f" Everywhere it looked there was {colour_en}, with touches of {others_en}.{wish_en}"
        f" It met a new friend, shared a snack, and by evening the whole picture glowed."
        f" The end."
    )
    text_de = (
        f"Es war einmal ein Bild voller {colour_de}, und {hero_de} machte sich {place_de}"
        f" auf den Weg. Überall war {colour_de}, dazu ein wenig {others_de}.{wish_de}"
        f" Unterwegs gab es einen neuen Freund und ein Picknick, und am Abend"
        f" leuchtete das ganze Bild. Ende."
    )
    return {
        "title_en": f"The {colour_en.capitalize()} Adventure",
        "text_en": text_en,
        "title_de": f"Das Abenteuer in {colour_de}",
        "text_de": text_de,
    }
