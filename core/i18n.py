"""Translations: Simplified Chinese by default, English available.

Message ids are English. Each module (the core and every plugin) keeps its catalog at
``locale/<lang>/LC_MESSAGES/messages.po`` next to its code; the catalogs of the active
modules are merged per language when the application is built. The language of the current
request lives in a context variable, so ``gettext`` works in endpoints, templates and jobs.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from babel.messages.pofile import read_po
from babel.support import Translations

DEFAULT_LANGUAGE = "zh"
LANGUAGES = {"zh": "简体中文", "en": "English"}
_LOCALE_DIR = {"zh": "zh_Hans", "en": "en"}

current_language: ContextVar[str] = ContextVar("kehu_language", default=DEFAULT_LANGUAGE)
_catalogs: dict[str, dict[str, str]] = {}


def load_catalogs(module_dirs: list[Path]) -> None:
    """Merge the ``messages.po`` of every given module folder, later modules winning."""
    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for folder in module_dirs:
        for lang in LANGUAGES:
            po = folder / "locale" / _LOCALE_DIR[lang] / "LC_MESSAGES" / "messages.po"
            if not po.exists():
                continue
            with po.open("rb") as fh:
                catalog = read_po(fh)
            for message in catalog:
                if message.id and message.string and isinstance(message.id, str):
                    merged[lang][message.id] = message.string  # type: ignore[assignment]
    _catalogs.clear()
    _catalogs.update(merged)


def gettext(message: str, **params: object) -> str:
    """Translate ``message`` into the current language; ``%(name)s`` params are filled in."""
    text = _catalogs.get(current_language.get(), {}).get(message, message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params: object) -> str:
    text = gettext(singular if n == 1 else plural)
    params.setdefault("num", n)
    return text % params


def pick(labels: dict[str, str], fallback: str = "") -> str:
    """Choose from a ``{"zh": ..., "en": ...}`` label for the current language."""
    lang = current_language.get()
    return labels.get(lang) or labels.get("en") or labels.get("zh") or fallback


def negotiate(cookie: str | None, user_language: str | None, accept_language: str | None) -> str:
    for candidate in (cookie, user_language):
        if candidate in LANGUAGES:
            return candidate  # type: ignore[return-value]
    if accept_language and accept_language.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def translations_for(lang: str) -> Translations:  # for tools that want a babel object
    translations = Translations()
    translations._catalog = dict(_catalogs.get(lang, {}))  # type: ignore[attr-defined]
    return translations
