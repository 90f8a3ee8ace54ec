"""Every hook of ``kehu.hookspecs`` has its ``### kehu_xxx`` section in ``docs/plugins.md``,
with its signature, and the guide documents no hook that does not exist."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from kehu import hookspecs

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def specified() -> dict[str, inspect.Signature]:
    """Every ``kehu_*`` function of ``kehu.hookspecs``."""
    return {name: inspect.signature(function) for name, function in vars(hookspecs).items()
            if name.startswith("kehu_") and inspect.isfunction(function) and function.__module__ == hookspecs.__name__}


def sections() -> dict[str, str]:
    """``### kehu_xxx`` heading → the text up to the next heading of that level or above."""
    text = GUIDE.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    parts = re.split(r"^(#{1,3} .*)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2]):
        match = re.fullmatch(r"### `?(kehu_\w+)`?\s*", heading)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is documented twice"
            found[match.group(1)] = body
    return found


def test_hookspecs_are_found() -> None:
    assert {"kehu_models", "kehu_routes", "kehu_slot", "kehu_on_event"} <= set(specified())
    not_specs = sorted(name for name in specified() if not hasattr(getattr(hookspecs, name), "kehu_spec"))
    assert not not_specs, f"kehu_* functions in kehu.hookspecs without @hookspec: {', '.join(not_specs)}"


def test_every_hook_has_a_section() -> None:
    missing = sorted(set(specified()) - set(sections()))
    assert not missing, f"docs/plugins.md has no '### <hook>' section for: {', '.join(missing)}"


def test_the_guide_documents_no_hook_that_does_not_exist() -> None:
    unknown = sorted(set(sections()) - set(specified()))
    assert not unknown, f"docs/plugins.md documents hooks that kehu.hookspecs does not have: {', '.join(unknown)}"


def test_each_section_shows_the_signature() -> None:
    documented = sections()
    for name, signature in specified().items():
        if name not in documented:
            continue  # reported by test_every_hook_has_a_section
        parameters = ", ".join(signature.parameters)
        shown = re.search(rf"def {name}\(([^)]*)\)", documented[name])
        assert shown, f"the section of {name} shows no 'def {name}(...)'"
        names = [p.split(":")[0].split("=")[0].strip() for p in shown.group(1).split(",") if p.strip()]
        assert names == list(signature.parameters), \
            f"the section of {name} shows ({', '.join(names)}), the hook takes ({parameters})"
