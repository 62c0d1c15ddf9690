"""The emails the users service sends, in each locale it knows."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fabula_users.accounts.models import DEFAULT_LOCALE


@dataclass(frozen=True)
class Template:
    subject: str
    # str.format fields: {link}, {lifetime} (how long the link works, in words).
    body: str


TEMPLATES: dict[tuple[str, str], Template] = {
    ("verify-email", "en"): Template(
        "Confirm your email address",
        "Hello,\n\n"
        "please confirm your email address for Fabula by opening this link:\n\n"
        "{link}\n\n"
        "The link works once and for {lifetime}. If you did not ask for it, "
        "you can ignore this email.\n",
    ),
    ("verify-email", "de"): Template(
        "Bitte bestätige deine E-Mail-Adresse",
        "Hallo,\n\n"
        "bitte bestätige deine E-Mail-Adresse für Fabula mit diesem Link:\n\n"
        "{link}\n\n"
        "Der Link gilt einmal und {lifetime} lang. Wenn du ihn nicht "
        "angefordert hast, kannst du diese E-Mail ignorieren.\n",
    ),
    ("reset-password", "en"): Template(
        "Reset your password",
        "Hello,\n\n"
        "someone asked to reset the password of your Fabula account. To choose a "
        "new one, open this link:\n\n"
        "{link}\n\n"
        "The link works once and for {lifetime}. If it was not you, ignore this "
        "email: your password stays as it is.\n",
    ),
    ("reset-password", "de"): Template(
        "Passwort zurücksetzen",
        "Hallo,\n\n"
        "jemand möchte das Passwort deines Fabula-Kontos zurücksetzen. Um ein neues "
        "zu wählen, öffne diesen Link:\n\n"
        "{link}\n\n"
        "Der Link gilt einmal und {lifetime} lang. Warst du es nicht, ignoriere "
        "diese E-Mail: dein Passwort bleibt, wie es ist.\n",
    ),
}

# A link's lifetime in words: (singular, plural) per unit and locale.
_UNITS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {"hour": ("1 hour", "{n} hours"), "minute": ("1 minute", "{n} minutes")},
    "de": {"hour": ("1 Stunde", "{n} Stunden"), "minute": ("1 Minute", "{n} Minuten")},
}

# Where each link leads in the app (APP_BASE_URL + path + ?token=...).
LINK_PATHS = {"verify-email": "/verify-email", "reset-password": "/reset-password"}


def render(
    kind: str, locale: str, *, base_url: str, token: str, ttl_seconds: float
) -> tuple[str, str]:
    """The subject and text of a `kind` email carrying `token`."""
    template = TEMPLATES.get((kind, locale)) or TEMPLATES[(kind, DEFAULT_LOCALE)]
    link = f"{base_url.rstrip('/')}{LINK_PATHS[kind]}?{urlencode({'token': token})}"
    lifetime = _lifetime(ttl_seconds, locale if locale in _UNITS else DEFAULT_LOCALE)
    return template.subject, template.body.format(link=link, lifetime=lifetime)


def _lifetime(seconds: float, locale: str) -> str:
    """The lifetime as "1 hour", "48 hours" or "30 minutes" (minutes under an hour, where hours
    would round to a promise the link does not keep)."""
    if seconds >= 3600:
        unit, n = "hour", round(seconds / 3600)
    else:
        unit, n = "minute", max(1, round(seconds / 60))
    one, many = _UNITS[locale][unit]
    return one if n == 1 else many.format(n=n)
