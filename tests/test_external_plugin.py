"""A plugin in a package of its own, outside this repository, through the real life cycle.

``kehu plugin new`` writes a package into a temporary folder; pip installs it (and a second
package whose plugin fails at import) into a folder of its own with ``--target``, so the
shared virtualenv is not changed; every ``kehu`` command then runs with that folder on
``PYTHONPATH``, where Kehu finds the plugins through their ``kehu.plugins`` entry points in
the installed ``*.dist-info``, exactly as for a ``pip install`` into the virtualenv.

Then, against a fresh ``KEHU_HOME``: the plugin is discovered (available), enabled, migrated,
its menu entry, page and home-page panel are served by ``kehu serve`` (and its panel on the
contact page when the contacts plugin is installed), its own generated tests pass, and it can
be disabled with its data kept and enabled again with the data back. The broken package is
listed as broken with its error and the application serves all the same.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, inspect, select, table

from kehu import scaffold
from tests.conftest import free_port, stop_process

KEHU = [str(Path(sys.executable).with_name("kehu"))] if Path(sys.executable).with_name("kehu").exists() \
    else [sys.executable, "-m", "kehu.cli"]
NAME = "extplug"

# A contact page panel, added to the generated plugin before it is installed.
CONTACT_PANEL = '''

@kehu.hookimpl(specname="kehu_slot")
def contact_panel(name: str, request: Request, context: dict[str, Any]) -> Panel | None:
    contact = context.get("contact")
    if name != "contacts.detail.panels" or contact is None:
        return None
    return Panel(title="Extplug", html=f'<p class="extplug-contact">extplug sees contact {int(contact.id)}</p>')
'''

BROKEN_PYPROJECT = '''
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "kehu-extbroken"
version = "0.1.0"

[project.entry-points."kehu.plugins"]
extbroken = "kehu_extbroken"

[tool.setuptools]
packages = ["kehu_extbroken"]
'''


def _can_build_without_isolation() -> bool:
    """setuptools builds wheels by itself from 70.1 on; before, it needs the wheel package."""
    import setuptools

    version = tuple(int(part) for part in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def pip_install_target(site: Path, *packages: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input", "--target", str(site)]
    if _can_build_without_isolation():
        command.append("--no-build-isolation")  # else pip fetches setuptools into a build environment
    result = subprocess.run([*command, *map(str, packages)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("external")
    package = scaffold.create(NAME, root / "src")
    init = package / f"kehu_{NAME}" / "__init__.py"
    init.write_text(init.read_text() + CONTACT_PANEL)
    broken = root / "src" / "kehu-extbroken"
    (broken / "kehu_extbroken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "kehu_extbroken" / "__init__.py").write_text(
        'raise RuntimeError("extbroken needs a licence key")\n')
    site = root / "site"
    pip_install_target(site, package, broken)
    assert (site / f"kehu_{NAME}" / "migrations" / "versions").is_dir()
    assert (site / f"kehu_{NAME}" / "templates" / NAME / "index.html").is_file()
    assert list(site.glob(f"kehu_{NAME}-*.dist-info/entry_points.txt"))
    return {"site": site, "package": package, "root": root}


def environment(site: Path, home: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEHU_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env["KEHU_EMBEDDED_WORKER"] = "0"
    env["PYTHONIOENCODING"] = "utf-8"
    if home is not None:
        env["KEHU_HOME"] = str(home)
    return env


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """``kehu serve`` on a free port; yields its base URL once it answers (30 s at most)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen([*KEHU, "serve", "--port", str(port), "--no-worker"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"kehu serve exited:\n{log.read_text()}"
            try:
                httpx.get(f"{base}/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"kehu serve did not answer in 30 s:\n{log.read_text()}"
                time.sleep(0.2)
        yield base
    finally:
        stop_process(process)


def wait_for(check, what: str, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    """Servers rebuild within a few seconds of a module change made by another process."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_installed_plugin_full_life_cycle(installed: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = environment(installed["site"], home)

    def kehu(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run([*KEHU, *args], env=env, input=stdin, capture_output=True, text=True,
                                encoding="utf-8", timeout=120)
        assert result.returncode == 0, f"kehu {' '.join(args)}: {result.stderr}{result.stdout}"
        return result.stdout

    kehu("db", "upgrade")
    listing = kehu("modules", "list")
    assert re.search(rf"^{NAME}\s+0\.1\.0\s+available", listing, re.M), listing
    assert re.search(r"^extbroken\s+\?\s+broken", listing, re.M), listing
    assert "error: import failed: RuntimeError: extbroken needs a licence key" in listing

    # Enabled and migrated: its table exists and its migration is current.
    assert kehu("modules", "enable", NAME).strip().splitlines()[-1] == f"enabled {NAME}"
    engine = create_engine(f"sqlite:///{home / 'kehu.sqlite3'}")
    assert f"{NAME}_item" in inspect(engine).get_table_names()
    assert re.search(rf"^{NAME}\s+at {scaffold.revision_id(NAME)}\s+up to date", kehu("db", "status"), re.M)

    contacts = bool(re.search(r"^contacts\s+\S+\s+available", listing, re.M))
    if contacts:
        kehu("modules", "enable", "contacts")
    password = "Ext-plugin-test-1!"
    kehu("users", "create", "root", "--role", "admin", "--password-stdin", stdin=password + "\n")

    with serving(env, tmp_path / "serve.log") as base, httpx.Client(base_url=base, headers={"origin": base}) as web:
        assert web.post("/login", data={"login": "root", "password": password, "next": "/"}).status_code == 303
        home_page = web.get("/").text
        web.headers["X-CSRF-Token"] = home_page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]

        # Its menu entry and its panel on the core's home page.
        assert f'href="/{NAME}/"' in home_page
        assert f'<section class="panel" data-slot="core.home.panels"><h2>Extplug</h2>' in home_page
        assert f'<p class="{NAME}-count">共 0 条</p>' in home_page
        # Its page, and a change through it.
        page = web.get(f"/{NAME}/")
        assert page.status_code == 200 and "这里还没有内容。" in page.text
        assert web.post(f"/{NAME}/add", data={"title": "Kept across disable"}, follow_redirects=True).status_code == 200
        assert "Kept across disable" in web.get(f"/{NAME}/").text
        assert f'<p class="{NAME}-count">共 1 条</p>' in web.get("/").text
        # The broken package does not stop the application: the modules page shows it broken.
        modules_page = web.get("/admin/modules").text
        broken_row = re.search(r'<tr data-module="extbroken">(.*?)</tr>', modules_page, re.S)
        assert broken_row and "badge-broken" in broken_row.group(1)
        assert "extbroken needs a licence key" in broken_row.group(1)
        plugin_row = re.search(rf'<tr data-module="{NAME}">(.*?)</tr>', modules_page, re.S)
        assert plugin_row and "badge-enabled" in plugin_row.group(1)

        if contacts:
            check_contact_panel(web)

        # Disabled by another process: the data stays, the page and menu entry go.
        assert kehu("modules", "disable", NAME).strip() == f"disabled {NAME} (data kept)"
        wait_for(lambda: f'href="/{NAME}/"' not in web.get("/").text, "the menu entry to go")
        assert web.get(f"/{NAME}/").status_code == 404
        assert "Extplug" not in web.get("/").text
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(table(f"{NAME}_item"))).scalar_one() == 1
        assert re.search(rf"^{NAME}\s+0\.1\.0\s+disabled", kehu("modules", "list"), re.M)

        # Enabled again: everything is back.
        kehu("modules", "enable", NAME)
        wait_for(lambda: f'href="/{NAME}/"' in web.get("/").text, "the menu entry to come back")
        assert "Kept across disable" in web.get(f"/{NAME}/").text
        assert f'<p class="{NAME}-count">共 1 条</p>' in web.get("/").text
    engine.dispose()


def check_contact_panel(web: httpx.Client) -> None:
    """The plugin's panel on a contact's page (a page of the contacts plugin)."""
    created = web.post("/api/contacts", json={"name": "测试客户", "phone": "13800138000"})
    assert created.status_code in (200, 201), created.text
    contact_id = created.json()["id"]
    page = web.get(f"/contacts/{contact_id}")
    assert page.status_code == 200, page.text
    assert '<section class="panel" data-slot="contacts.detail.panels"><h2>Extplug</h2>' in page.text
    assert f'<p class="extplug-contact">extplug sees contact {contact_id}</p>' in page.text


def test_generated_tests_pass(installed: dict[str, Path]) -> None:
    env = environment(installed["site"], None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=installed["package"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"the generated plugin's tests failed:\n{result.stdout}\n{result.stderr}"
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout
