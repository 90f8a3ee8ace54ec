"""The administration pages: users, roles (the permission matrix), API tokens, the audit log,
and the guard rails (no privilege escalation, always an administrator left)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from kehu import audit, auth, rbac
from kehu.config import Settings
from kehu.models import AuditEntry, Role, RolePermission, User
from kehu.platform import Platform
from tests.conftest import boot_with, create_user, web_client


class Admin:
    def __init__(self, settings: Settings, enable: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.platform: Platform = boot_with(settings, enable)
        self.passwords: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        self.add("boss", ("admin",))
        self.add("alice")

    def add(self, login: str, roles: tuple[str, ...] = (), permissions: tuple[str, ...] = ()) -> None:
        if permissions:
            with self.platform.session() as db:
                role = Role(name=f"role_{login}", label={"en": f"Role of {login}"}, module="core")
                role.permissions = [RolePermission(permission=p) for p in permissions]
                db.add(role)
            roles = (*roles, f"role_{login}")
        self.ids[login], self.passwords[login] = create_user(self.platform, login, roles)

    def client(self, login: str) -> Any:
        return web_client(self.settings, login, self.passwords[login])

    def user(self, login: str) -> User:
        with self.platform.sessions() as db:
            user = db.scalar(select(User).where(User.login == login))
            assert user is not None
            return user

    def role_id(self, name: str) -> int:
        with self.platform.sessions() as db:
            role_id = db.scalar(select(Role.id).where(Role.name == name))
            assert role_id is not None
            return role_id

    def permissions_of(self, role: str) -> set[str]:
        with self.platform.sessions() as db:
            return set(db.scalars(select(RolePermission.permission).join(Role).where(Role.name == role)))

    def audit(self, prefix: str) -> list[AuditEntry]:
        with self.platform.sessions() as db:
            return list(db.scalars(select(AuditEntry).where(AuditEntry.action.startswith(prefix))
                                   .order_by(AuditEntry.id)))


@pytest.fixture
def site(settings: Settings) -> Admin:
    return Admin(settings)


def can_log_in(settings: Settings, login: str, password: str) -> bool:
    response = web_client(settings).post("/login", data={"login": login, "password": password},
                                         follow_redirects=False)
    return response.status_code == 303


def test_create_a_user_with_roles(site: Admin) -> None:
    boss = site.client("boss")
    form = boss.get("/admin/users/new")
    assert form.status_code == 200 and 'name="roles"' in form.text
    bad = boss.post("/admin/users/new", data={"login": "bad login!", "password": "password1",
                                              "roles": [str(site.role_id("admin"))]})
    assert bad.status_code == 422 and bad.text.count('class="field-error"') == 2
    assert 'value="bad login!"' in bad.text  # what was typed is kept
    duplicate = boss.post("/admin/users/new", data={"login": "ALICE", "password": "a fine long password"})
    assert duplicate.status_code == 422
    created = boss.post("/admin/users/new", data={"login": "wang.fang", "name": "王芳", "team": "华东",
                                                  "password": "a fine long password",
                                                  "roles": [str(site.role_id("admin"))]}, follow_redirects=False)
    assert created.status_code == 303 and re.fullmatch(r"/admin/users/\d+\?message=.*", created.headers["location"])
    user = site.user("wang.fang")
    assert (user.name, user.team, [r.name for r in user.roles]) == ("王芳", "华东", ["admin"])
    assert can_log_in(site.settings, "wang.fang", "a fine long password")
    entry = site.audit("users.create")[-1]
    assert (entry.actor_login, entry.target, entry.detail) == ("boss", f"user:{user.id}",
                                                               {"login": "wang.fang", "roles": ["admin"]})
    listing = boss.get("/admin/users", params={"q": "王"})
    assert 'data-user="wang.fang"' in listing.text and 'data-user="alice"' not in listing.text


def test_a_generated_password_is_shown_once(site: Admin) -> None:
    boss = site.client("boss")
    created = boss.post("/admin/users/new", data={"login": "li.qiang"})
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    password = re.search(r"<code data-password>([^<]+)</code>", created.text).group(1)  # type: ignore[union-attr]
    assert can_log_in(site.settings, "li.qiang", password)
    assert password not in boss.get(f"/admin/users/{site.user('li.qiang').id}").text


def test_edit_profile_and_roles_is_audited(site: Admin) -> None:
    boss = site.client("boss")
    alice = site.user("alice")
    with site.platform.session() as db:
        db.add(Role(name="clerk", label={"en": "Clerk"}, module="core"))
    saved = boss.post(f"/admin/users/{alice.id}", data={"name": "Alice Wang", "team": "north", "language": "en",
                                                         "roles": [str(site.role_id("clerk"))]}, follow_redirects=False)
    assert saved.status_code == 303
    alice = site.user("alice")
    assert (alice.name, alice.team, alice.language, [r.name for r in alice.roles]) == ("Alice Wang", "north", "en",
                                                                                     ["clerk"])
    boss.post(f"/admin/users/{alice.id}", data={"name": "Alice Wang", "team": "north", "language": "en"})
    changes = [(e.action, e.detail) for e in site.audit("users.")]
    assert changes == [
        ("users.update", {"login": "alice", "fields": ["name", "team", "language"]}),
        ("users.roles", {"login": "alice", "added": ["clerk"], "removed": []}),
        ("users.roles", {"login": "alice", "added": [], "removed": ["clerk"]}),
    ]


def test_disabling_a_user_ends_their_sessions_and_tokens(site: Admin) -> None:
    boss, alice = site.client("boss"), site.client("alice")
    with site.platform.session() as db:
        token = auth.issue_token(db, db.scalar(select(User).where(User.login == "alice")), "t")  # type: ignore[arg-type]
    alice_id = site.ids["alice"]
    assert boss.post(f"/admin/users/{alice_id}/disable", follow_redirects=False).status_code == 303
    assert alice.get("/", headers={"accept": "application/json"}).status_code == 401
    assert web_client(site.settings).get("/", headers={"authorization": f"Bearer {token}"}).status_code == 401
    assert not can_log_in(site.settings, "alice", site.passwords["alice"])
    assert site.audit("users.disable")[-1].detail == {"login": "alice", "sessions_ended": 1}
    refused = boss.post(f"/admin/users/{site.ids['boss']}/disable")
    assert refused.status_code == 200 and "flash-error" in refused.text and site.user("boss").active
    boss.post(f"/admin/users/{alice_id}/enable")
    assert can_log_in(site.settings, "alice", site.passwords["alice"])
    assert [e.action for e in site.audit("users.")] == ["users.disable", "users.enable"]


def test_reset_password_and_unlock(site: Admin) -> None:
    boss, alice = site.client("boss"), site.client("alice")
    alice_id = site.ids["alice"]
    weak = boss.post(f"/admin/users/{alice_id}/password", data={"password": "12345678"})
    assert weak.status_code == 422 and "field-error" in weak.text
    reset = boss.post(f"/admin/users/{alice_id}/password", data={"password": ""})
    assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
    password = re.search(r"<code data-password>([^<]+)</code>", reset.text).group(1)  # type: ignore[union-attr]
    assert alice.get("/", headers={"accept": "application/json"}).status_code == 401
    assert not can_log_in(site.settings, "alice", site.passwords["alice"])
    assert can_log_in(site.settings, "alice", password)

    anonymous = web_client(site.settings)
    for _ in range(auth.ACCOUNT_LIMIT):
        anonymous.post("/login", data={"login": "alice", "password": "wrong"})
    assert not can_log_in(site.settings, "alice", password)
    page = boss.get(f"/admin/users/{alice_id}")
    assert f'action="/admin/users/{alice_id}/unlock"' in page.text
    assert 'badge-warning' in boss.get("/admin/users").text
    boss.post(f"/admin/users/{alice_id}/unlock")
    assert can_log_in(site.settings, "alice", password)
    assert [e.action for e in site.audit("users.")] == ["users.password_reset", "users.unlock"]


def test_admin_turns_off_a_lost_second_factor(site: Admin) -> None:
    import pyotp

    alice = site.client("alice")
    alice.post("/account/totp/start")
    uri = re.search(r"data-totp-uri>([^<]+)<", alice.get("/account/totp").text).group(1)  # type: ignore[union-attr]
    alice.post("/account/totp/confirm", data={"code": pyotp.TOTP(pyotp.parse_uri(uri.replace("&amp;", "&")).secret).now()})
    assert site.user("alice").totp_enabled
    site.client("boss").post(f"/admin/users/{site.ids['alice']}/totp-reset")
    assert not site.user("alice").totp_enabled
    assert site.audit("users.totp_reset")[-1].detail == {"login": "alice"}


def test_the_last_administrator_cannot_be_removed(site: Admin) -> None:
    boss = site.client("boss")
    boss_id = site.ids["boss"]
    refused = boss.post(f"/admin/users/{boss_id}", data={"name": "boss", "roles": []}, follow_redirects=False)
    assert "error=" in refused.headers["location"]
    assert [r.name for r in site.user("boss").roles] == ["admin"]
    admin_role = site.role_id("admin")
    matrix = boss.post(f"/admin/roles/{admin_role}", data={"permissions": ["core.admin_users"]}, follow_redirects=False)
    assert "error=" in matrix.headers["location"] and "*" in site.permissions_of("admin")
    site.add("second", ("admin",))
    assert "error=" not in boss.post(f"/admin/users/{site.ids['second']}/disable",
                                     follow_redirects=False).headers["location"]
    assert not site.user("second").active


def test_a_delegated_administrator_cannot_grant_more_than_they_hold(site: Admin) -> None:
    site.add("helper", permissions=("core.admin_users",))
    with site.platform.session() as db:
        role = Role(name="auditor", label={}, module="core")
        role.permissions = [RolePermission(permission="core.view_audit")]
        db.add(role)
    helper = site.client("helper")
    refused = helper.post("/admin/users/new", data={"login": "sneaky", "password": "a fine long password",
                                                    "roles": [str(site.role_id("admin"))]})
    assert refused.status_code == 422 and not _exists(site, "sneaky")
    assert helper.post(f"/admin/users/{site.ids['alice']}",
                       data={"name": "alice", "roles": [str(site.role_id("auditor"))]},
                       follow_redirects=False).headers["location"].count("error=") == 1
    assert site.user("alice").roles == []
    # Nor can they give a role more permissions, or take over an administrator's account.
    helper.post(f"/admin/roles/{site.role_id('role_helper')}",
                data={"permissions": ["core.admin_users", "core.view_audit"]})
    assert site.permissions_of("role_helper") == {"core.admin_users"}
    helper.post("/admin/roles", data={"roles": [str(site.role_id("role_helper"))],
                                      "grant": [f"{site.role_id('role_helper')}:core.admin_modules"]})
    assert site.permissions_of("role_helper") == {"core.admin_users"}
    helper.post(f"/admin/users/{site.ids['boss']}", data={"name": "renamed by helper", "roles": []})
    assert site.user("boss").name == "boss" and [r.name for r in site.user("boss").roles] == ["admin"]
    old_hash = site.user("boss").password_hash
    helper.post(f"/admin/users/{site.ids['boss']}/password", data={"password": "taken over now"})
    assert site.user("boss").password_hash == old_hash
    # What they hold, they can give.
    created = helper.post("/admin/users/new", data={"login": "junior", "password": "a fine long password",
                                                    "roles": [str(site.role_id("role_helper"))]},
                          follow_redirects=False)
    assert created.status_code == 303 and [r.name for r in site.user("junior").roles] == ["role_helper"]


def _exists(site: Admin, login: str) -> bool:
    with site.platform.sessions() as db:
        return db.scalar(select(User.id).where(User.login == login)) is not None


def test_the_permission_matrix_per_module(settings: Settings) -> None:
    site = Admin(settings, ("contacts",))
    boss = site.client("boss")
    page = boss.get("/admin/roles")
    assert page.status_code == 200
    assert 'data-module="core"' in page.text and 'data-module="contacts"' in page.text
    sales, viewer = site.role_id("sales"), site.role_id("viewer")
    assert f'value="{viewer}:contacts.export"' in page.text
    assert re.search(rf'value="{sales}:contacts.read"[^>]*checked', page.text)
    with site.platform.session() as db:  # a permission of a module that is not enabled now
        db.add(RolePermission(role_id=sales, permission="tickets.read"))
    before = site.permissions_of("sales")
    grants = [f"{sales}:{p}" for p in before if p.startswith("contacts.") and p != "contacts.view_sensitive"]
    grants += [f"{sales}:contacts.export", f"{viewer}:contacts.read", f"{viewer}:contacts.read_all"]
    saved = boss.post("/admin/roles", data={"roles": [str(sales), str(viewer)], "grant": grants},
                      follow_redirects=False)
    assert saved.status_code == 303
    assert site.permissions_of("sales") == before - {"contacts.view_sensitive"} | {"contacts.export"}
    assert "tickets.read" in site.permissions_of("sales")  # kept, not shown, not dropped
    assert [(e.target, e.detail) for e in site.audit("roles.")] == [
        ("role:sales", {"added": ["contacts.export"], "removed": ["contacts.view_sensitive"]})]

    role_page = boss.get(f"/admin/roles/{sales}")
    assert "tickets.read" in role_page.text and 'name="permissions" value="contacts.export" checked' in role_page.text


def test_create_label_and_delete_a_role(site: Admin) -> None:
    boss = site.client("boss")
    assert boss.post("/admin/roles/new", data={"name": "Bad Name"}).status_code == 422
    created = boss.post("/admin/roles/new", data={"name": "support", "label_zh": "客服", "label_en": "Support"},
                        follow_redirects=False)
    role_id = site.role_id("support")
    assert created.headers["location"].startswith(f"/admin/roles/{role_id}")
    assert boss.post("/admin/roles/new", data={"name": "support"}).status_code == 422
    boss.post(f"/admin/roles/{role_id}", data={"label_zh": "客服", "label_en": "Service desk",
                                               "permissions": ["core.view_audit"]})
    assert site.permissions_of("support") == {"core.view_audit"}
    boss.post(f"/admin/users/{site.ids['alice']}", data={"name": "alice", "roles": [str(role_id)]})
    busy = boss.post(f"/admin/roles/{role_id}/delete", follow_redirects=False)
    assert "error=" in busy.headers["location"]
    alice = site.client("alice")
    assert alice.get("/admin/audit").status_code == 200 and alice.get("/admin/users").status_code == 403
    boss.post(f"/admin/users/{site.ids['alice']}", data={"name": "alice", "roles": []})
    boss.post(f"/admin/roles/{role_id}/delete")
    with site.platform.sessions() as db:
        assert db.scalar(select(Role).where(Role.name == "support")) is None
    assert [e.action for e in site.audit("roles.")] == ["roles.create", "roles.update", "roles.permissions",
                                                        "roles.delete"]


def test_a_deleted_default_role_stays_deleted(settings: Settings) -> None:
    site = Admin(settings, ("contacts",))
    boss = site.client("boss")
    boss.post(f"/admin/roles/{site.role_id('viewer')}/delete")
    with site.platform.session() as db:  # what `kehu db upgrade` and enabling a module run
        assert rbac.sync_roles(site.platform, db) == []
    with site.platform.sessions() as db:
        names = set(db.scalars(select(Role.name)))
    assert "viewer" not in names and "sales" in names


def test_tokens_page_lists_and_revokes_every_users_tokens(site: Admin) -> None:
    with site.platform.session() as db:
        raw = auth.issue_token(db, db.scalar(select(User).where(User.login == "alice")), "alice's script")  # type: ignore[arg-type]
    boss = site.client("boss")
    page = boss.get("/admin/tokens")
    assert "alice&#39;s script" in page.text and raw[:12] in page.text and raw not in page.text
    token_id = re.search(r'data-token-id="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    assert boss.post(f"/admin/tokens/{token_id}/revoke", follow_redirects=False).status_code == 303
    assert web_client(site.settings).get("/", headers={"authorization": f"Bearer {raw}"}).status_code == 401
    assert "alice&#39;s script" in boss.get("/admin/tokens", params={"state": "revoked"}).text
    assert "alice&#39;s script" not in boss.get("/admin/tokens").text
    assert site.audit("auth.token")[-1].detail == {"revoked": True, "user": "alice", "name": "alice's script"}


def test_audit_page_filters_and_pages(site: Admin) -> None:
    with site.platform.session() as db:
        for number in range(120):
            audit.record(db, "test.bulk", actor=audit.Actor("robot"), target=f"item:{number}")
        audit.record(db, "test.special", actor=audit.Actor("other"), target="needle", detail={"fields": ["phone"]})
    boss = site.client("boss")
    first = boss.get("/admin/audit")
    ids = [int(i) for i in re.findall(r'data-entry="(\d+)"', first.text)]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    older = re.search(r'rel="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = boss.get(older)
    second_ids = [int(i) for i in re.findall(r'data-entry="(\d+)"', second.text)]
    assert len(second_ids) == 50 and second_ids[0] == ids[-1] - 1
    newer = re.search(r'rel="prev" href="([^"]+)"', second.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert [int(i) for i in re.findall(r'data-entry="(\d+)"', boss.get(newer).text)] == ids

    def found(**params: str) -> list[str]:
        return re.findall(r'data-entry="(\d+)"', boss.get("/admin/audit", params=params).text)

    assert len(found(actor="other")) == 1 and len(found(action="test.special")) == 1
    assert len(found(action="test")) == 50 and len(found(q="needle")) == 1 and len(found(q="phone")) == 1
    today = (auth.utcnow() + timedelta(hours=8)).date()
    assert len(found(since=str(today), until=str(today), actor="other")) == 1
    assert found(since=str(today + timedelta(days=1))) == [] and found(until=str(today - timedelta(days=1))) == []
    assert "robot" in boss.get("/admin/audit", params={"actor": "robot"}).text


def test_pages_speak_chinese_by_default_and_english_on_request(site: Admin) -> None:
    boss = site.client("boss")
    for url, chinese, english in (("/admin/users", "新建用户", "New user"), ("/admin/roles", "角色与权限", "Roles and permissions"),
                                  ("/admin/audit", "审计日志", "Audit log"), ("/account", "我的账户", "My account"),
                                  ("/admin/tokens", "API 令牌", "API tokens")):
        assert chinese in boss.get(url).text, url
        boss.cookies.set("kehu_lang", "en")
        assert english in boss.get(url).text, url
        boss.cookies.delete("kehu_lang")


def test_the_account_page_needs_only_a_login(site: Admin) -> None:
    alice = site.client("alice")
    assert alice.get("/account").status_code == 200
    assert alice.get("/admin/users").status_code == 403 and alice.get("/admin/audit").status_code == 403
    with site.platform.session() as db:
        db.execute(update(User).where(User.login == "alice").values(name="改过的名字"))
    assert "alice" in alice.get("/account").text


@pytest.mark.browser
def test_admin_pages_fit_a_phone(settings: Settings, live_server: Any, page: Any) -> None:
    from tests.browser import assert_fits_phone, login

    if not settings.is_sqlite:
        pytest.skip("the layout does not depend on the database")
    server = live_server(settings, ["contacts"])
    user_id, password = create_user(server.platform, "boss", ("admin",))
    with server.platform.session() as db:
        audit.record(db, "test.event", actor=audit.Actor("robot"), target="一个很长的对象名称" * 4,
                     detail={"fields": ["phone", "email", "street", "address_detail", "wechat_openid"]})
    login(page, server.url, "boss", password)
    for path in ("/admin/users", "/admin/users/new", f"/admin/users/{user_id}", "/admin/roles", "/admin/roles/1",
                 "/admin/tokens", "/admin/audit", "/account", "/account/totp"):
        page.goto(server.url + path)
        assert page.locator("h1").count() == 1, path
        assert_fits_phone(page)
    # Create a user on the phone, with a role, and find them in the list.
    page.goto(server.url + "/admin/users/new")
    page.locator("input[name='login']").fill("zhang.wei")
    page.locator("input[name='name']").fill("张伟")
    page.locator("label", has_text="sales").locator("input[type='checkbox']").check()
    with page.expect_navigation():
        page.locator("form[action='/admin/users/new'] [type='submit']").click()
    assert page.locator("code[data-password]").count() == 1
    assert_fits_phone(page)
    page.goto(server.url + "/admin/users")
    assert "张伟" in page.locator("tr[data-user='zhang.wei']").inner_text()


def test_the_core_catalog_translates_every_message() -> None:
    """Every ``_()`` message of the core's code and templates has a Chinese translation."""
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    core = Path(auth.__file__).parent
    method_map = [("scaffold_template/**", "ignore"), ("migration_template/**", "ignore"),
                  ("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
    used: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(str(core), method_map, options):
        for text_ in message if isinstance(message, tuple) else (message,):
            if text_:
                used.setdefault(text_, f"{filename}:{lineno}")
    with (core / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        translated = {m.id for m in read_po(handle) if m.id and m.string}
    missing = {text_: where for text_, where in used.items() if text_ not in translated}
    assert len(used) > 150 and not missing, missing
