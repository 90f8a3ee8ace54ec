"""The worked example of ``docs/plugins.md`` is real: built from the guide, it works as shown.

The files of the ``visits`` plugin are taken from the guide as they are (each code block under a
``#### `path` `` heading), installed with pip into a folder of their own (``--target``, so the
shared virtualenv is not changed; ``kehu`` runs with that folder on ``PYTHONPATH`` and finds the
plugin through its entry point, as after a ``pip install``), and the guide's console sessions
are replayed against a fresh ``KEHU_HOME``: each ``kehu`` command of the migration walk-through
and each ``curl`` call of the JSON API section runs, and what it prints must be what the guide
shows (revision ids, times and temporary paths aside; ``...`` in the guide stands for anything).
The staff pages of the example are driven too. A change to the core that breaks the example, or
a guide edited without running it, fails here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_external_plugin import KEHU, environment, pip_install_target, serving

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
#: A file of the example: its path in a ``#### `...` `` heading, its content in the next block.
FILE = re.compile(r"^#### `(?P<path>[^`]+)`\n\n```[a-z]*\n(?P<body>.*?)^```$", re.M | re.S)
CONSOLE = re.compile(r"^```console\n(?P<body>.*?)^```$", re.M | re.S)
#: The documented base URL of ``kehu serve``, replaced by the test server's.
DOCUMENTED_BASE = "http://127.0.0.1:8000"
PASSWORD = "Docs-example-test-1!"
STATUS_OF_ERROR = {"invalid": 422, "not_found": 404, "bad_json": 400, "forbidden": 403}

Console = list[tuple[str, str]]


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def example_files() -> dict[str, str]:
    """Path → content of every file the guide shows under a ``#### `path` `` heading."""
    files: dict[str, str] = {}
    for match in FILE.finditer(guide()):
        assert match["path"] not in files, f"the guide shows {match['path']} twice"
        files[match["path"]] = match["body"]
    return files


def consoles(text: str) -> list[Console]:
    """Each ``console`` block of ``text`` as ``[(command, output), ...]``; a command continued
    with ``\\`` is joined into one line."""
    blocks = []
    for block in CONSOLE.finditer(text):
        pairs: Console = []
        lines = block["body"].splitlines()
        while lines:
            line = lines.pop(0)
            assert line.startswith("$ "), f"console output before any command: {line!r}"
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1].rstrip() + " " + lines.pop(0).strip()
            output = []
            while lines and not lines[0].startswith("$ "):
                output.append(lines.pop(0))
            pairs.append((command, "\n".join(output)))
        blocks.append(pairs)
    return blocks


def section(heading: str) -> str:
    """The guide's text under ``heading`` (``"### JSON API"``), up to the next heading of the
    same level or above (lines in code blocks are not headings)."""
    lines = guide().splitlines(keepends=True)
    assert lines.count(heading + "\n") == 1, f"the guide has no single heading {heading!r}"
    start = lines.index(heading + "\n") + 1
    level = len(heading.split(" ", 1)[0])
    fenced = False
    for index in range(start, len(lines)):
        if lines[index].startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(rf"#{{1,{level}}} ", lines[index]):
            return "".join(lines[start:index])
    return "".join(lines[start:])


def console_with(heading: str, command_start: str) -> Console:
    """The console block under ``heading`` holding a command that starts with ``command_start``."""
    found = [pairs for pairs in consoles(section(heading)) if any(c.startswith(command_start) for c, _ in pairs)]
    assert found, f"the guide shows no `{command_start}` under {heading!r}"
    return found[0]


def without_warnings(text: str) -> str:
    """``text`` without Python warnings (``file:line: SomeWarning: ...`` and the source line
    under it): the guide shows what a terminal shows, warnings included; they go to stderr."""
    return re.sub(r"^\S+:\d+: \w*Warning: .*\n(?:[ \t]+.*\n?)?", "", text + "\n", flags=re.M).rstrip("\n")


def normalized(text: str) -> str:
    text = re.sub(r"(?<![0-9a-z])[0-9a-f]{12}(?![0-9a-z])", "<revision>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", "<time>", text)
    text = re.sub(r"created master key \S+", "created master key <path>", text)
    return re.sub(r"\S*/kehu_visits/", "<package>/", text)


def assert_shown(documented: str, actual: str, what: str) -> None:
    """``actual`` is what the guide shows; ``...`` in the guide stands for anything."""
    expected, got = normalized(documented).strip(), normalized(actual).strip()
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    assert re.fullmatch(pattern, got, re.S), f"{what}: the guide shows\n{documented}\nbut it printed\n{actual}"


# --- The files ----------------------------------------------------------------------------------


def test_the_guide_shows_every_file_of_the_example() -> None:
    files = example_files()
    package = {path for path in files if path.startswith("kehu_visits/")}
    assert "pyproject.toml" in files
    assert {"kehu_visits/__init__.py", "kehu_visits/models.py", "kehu_visits/service.py", "kehu_visits/views.py",
            "kehu_visits/api.py", "kehu_visits/tasks.py", "kehu_visits/cli.py",
            "kehu_visits/templates/visits/index.html", "kehu_visits/templates/visits/panel.html",
            "kehu_visits/locale/zh_Hans/LC_MESSAGES/messages.po"} <= package
    for path, content in files.items():
        if path.endswith(".py"):
            compile(content, f"docs/plugins.md: {path}", "exec")  # the example's tests too


# --- The example, built from the guide and run -------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The example package, written from the guide and pip-installed into a folder of its own."""
    source = tmp_path / "src" / "kehu-visits"
    for path, content in example_files().items():
        if path == "pyproject.toml" or path.startswith("kehu_visits/"):
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            (source / path).write_text(content, encoding="utf-8")
    site = tmp_path / "site"
    pip_install_target(site, source)
    assert list(site.glob("kehu_visits-*.dist-info/entry_points.txt"))
    assert (site / "kehu_visits" / "templates" / "visits" / "panel.html").is_file()
    return site


def test_the_worked_example_works_as_the_guide_shows(site: Path, tmp_path: Path) -> None:
    env = environment(site, tmp_path / "home")

    def kehu(command: str, stdin: str | None = None) -> str:
        args = shlex.split(command)
        assert args[0] == "kehu", command
        result = subprocess.run([*KEHU, *args[1:]], env=env, input=stdin, capture_output=True, text=True,
                                encoding="utf-8", timeout=120)
        assert result.returncode == 0, f"{command}: {result.stderr}{result.stdout}"
        return result.stdout

    # "Model and migration": install, enable, write the revision, migrate.
    for command, shown in console_with("### Model and migration", "kehu db revision"):
        if command.startswith("pip install"):
            continue  # installed above, with --target
        assert_shown(without_warnings(shown), kehu(command.split("#")[0]), f"$ {command}")
    revisions = list((site / "kehu_visits" / "migrations" / "versions").glob("*_visits_table.py"))
    assert len(revisions) == 1 and "op.create_table('visits_visit'" in revisions[0].read_text()

    # "Installed, enabled, disabled, broken": kehu modules list.
    (listing,) = [pair for pair in console_with("### Installed, enabled, disabled, broken", "kehu modules list")
                  if pair[0] == "kehu modules list"]
    assert_shown(listing[1], kehu("kehu modules list"), "$ kehu modules list")

    # "JSON API": the curl session against `kehu serve`.
    with serving(env, tmp_path / "serve.log") as base:
        token = replay_api_session(kehu, base)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
            for store in ("徐汇店", "徐汇店"):
                assert api.post("/api/visits/visits", json={"contact_id": 1, "store": store}).status_code == 201
            schema = api.get("/api/openapi.json").json()
            assert schema["paths"]["/api/visits/visits"]["post"]["summary"] == "Record a visit"
        # "A command": the stats of the visits above (静安店 once from the session, 徐汇店 twice).
        ((command, shown),) = console_with("### A command", "kehu visits stats")
        assert_shown(shown, kehu(command), f"$ {command}")
        drive_staff_pages(base)


def replay_api_session(kehu: Callable[..., str], base: str) -> str:
    """Run the JSON API section's console session; returns the API token it made."""
    token = ""
    for command, shown in console_with("### JSON API", "curl"):
        if command.startswith("kehu users create"):  # the guide types the password at a prompt
            printed = kehu(command + " --password-stdin", stdin=PASSWORD + "\n")
            shown = "\n".join(line for line in shown.splitlines() if not line.startswith(("Password:", "Repeat")))
            assert_shown(shown, printed, f"$ {command}")
        elif command == "TOKEN=$(kehu users token admin)":
            token = kehu("kehu users token admin").strip()
        else:
            response = curl(command.replace("$TOKEN", token), base)
            assert_shown(shown, response.text, f"$ {command}")
            answer: dict[str, Any] = response.json()
            if "error" in answer:
                assert response.status_code == STATUS_OF_ERROR[answer["error"]["code"]], response.text
            else:
                assert response.status_code == (201 if response.request.method == "POST" else 200), response.text
    assert token, "the guide's API session makes no token"
    return token


def curl(command: str, base: str) -> httpx.Response:
    """Send what ``curl -s [-H header]... [-d body] URL`` would."""
    args = shlex.split(command)
    assert args[0] == "curl", command
    headers: dict[str, str] = {}
    body: str | None = None
    url = ""
    words = iter(args[1:])
    for word in words:
        if word == "-H":
            name, _, value = next(words).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(words)
        elif word == "-s":
            continue
        else:
            assert word.startswith(DOCUMENTED_BASE) and not url, f"unexpected curl argument {word!r}"
            url = base + word[len(DOCUMENTED_BASE):]
    if body is None:
        return httpx.get(url, headers=headers, timeout=30)
    json.loads(body)  # the guide's bodies are JSON
    return httpx.post(url, headers=headers, content=body.encode(), timeout=30)


def drive_staff_pages(base: str) -> None:
    """The staff page, the panel on the contact page and its form (views.py, panel.html)."""
    with httpx.Client(base_url=base, headers={"origin": base}, timeout=30) as web:
        assert web.post("/login", data={"login": "admin", "password": PASSWORD, "next": "/"}).status_code == 303
        home = web.get("/").text
        csrf = home.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        assert 'href="/visits/"' in home  # the menu entry

        contact = web.get("/contacts/1").text
        assert '<section class="panel" data-slot="contacts.detail.panels"><h2>到店</h2>' in contact
        assert "<li>" in contact and "静安店" in contact and 'action="/visits/add"' in contact

        added = web.post("/visits/add", data={"csrf_token": csrf, "contact_id": "1", "store": "徐汇店", "note": "试穿"},
                         follow_redirects=True)
        assert added.status_code == 200 and str(added.url).endswith("/contacts/1"), added.text
        assert "徐汇店: 试穿" in added.text
        assert "到访徐汇店" in added.text  # the contacts_timeline entry

        listing = web.get("/visits/")
        assert listing.status_code == 200 and listing.text.count("徐汇店") == 3

        invalid = web.post("/visits/add", data={"csrf_token": csrf, "contact_id": "1", "store": ""})
        assert invalid.status_code == 422 and "部分内容无效。" in invalid.text
        missing = web.post("/visits/add", data={"csrf_token": csrf, "contact_id": "999", "store": "x"})
        assert missing.status_code == 404 and "没有这个客户。" in missing.text
