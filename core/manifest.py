"""The manifest every plugin carries as ``MANIFEST`` in its entry-point module."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class Manifest:
    """What a plugin says about itself.

    ``depends`` maps a module name to a version range (PEP 440 specifier, ``""`` for any),
    ``core_api`` is the range of :data:`kehu.CORE_API_VERSION` the plugin supports and
    ``label`` gives the human name per language (``{"zh": "客户", "en": "Contacts"}``).
    """

    name: str
    version: str
    summary: str
    depends: dict[str, str] = field(default_factory=dict)
    core_api: str = ">=1.0,<2"
    label: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name or ""):
            raise ManifestError(
                f"manifest name {self.name!r} must be 2-40 lower-case letters, digits or '_', starting with a letter"
            )
        try:
            Version(self.version)
        except InvalidVersion:
            raise ManifestError(f"{self.name}: version {self.version!r} is not a PEP 440 version") from None
        for spec_owner, spec in [("core_api", self.core_api), *self.depends.items()]:
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                raise ManifestError(f"{self.name}: version range {spec!r} for {spec_owner} is not valid") from None

    def display_label(self, lang: str) -> str:
        return self.label.get(lang) or self.label.get("en") or self.name

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def accepts(self, dependency: str, version: str) -> bool:
        return Version(version) in SpecifierSet(self.depends.get(dependency, ""))
