"""Authentication: password hashing and policy, sessions (rotation, server-side end), CSRF,
login throttling that reveals nothing about which accounts exist, TOTP, API tokens."""

from __future__ import annotations

import hashlib
import re
import statistics
import time
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text, update

from kehu import auth
from kehu.config import Settings
from kehu.models import ApiToken, AuditEntry, AuthSession, LoginThrottle, User
from kehu.platform import Platform
from tests.conftest import boot_with, create_user, web_client


class Site:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.platform: Platform = boot_with(settings)
        self.ids: dict[str, int] = {}
        self.passwords: dict[str, str] = {}
        for login, roles in (("boss", ("admin",)), ("alice", ())):
            self.ids[login], self.passwords[login] = create_user(self.platform, login, roles)

    def client(self, login: str | None = None, address: str = "testclient") -> Any:
        if login is None:
            client = web_client(self.settings)
            return _with_address(client, address) if address != "testclient" else client
        return web_client(self.settings, login, self.passwords[login])

    def audit(self, action: str) -> list[AuditEntry]:
        with self.platform.sessions() as db:
            return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))

    def user(self, login: str) -> User:
        with self.platform.sessions() as db:
            user = db.scalar(select(User).where(User.login == login))
            assert user is not None
            return user


def _with_address(client: Any, address: str) -> Any:
    from starlette.testclient import TestClient

    return TestClient(client.app, base_url="http://testserver", headers={"origin": "http://testserver"},
                      client=(address, 50000))


@pytest.fixture
def site(settings: Settings) -> Site:
    return Site(settings)


def login(client: Any, name: str, password: str, next_url: str = "/") -> Any:
    return client.post("/login", data={"login": name, "password": password, "next": next_url}, follow_redirects=False)


def csrf_of(client: Any) -> str:
    page = client.get("/")
    return page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


# --- passwords ------------------------------------------------------------------------------


def test_password_policy_follows_asvs() -> None:
    assert auth.password_problems("seven77") != []  # too short
    assert auth.password_problems("a" * 7 + "b") == []  # 8 is enough, no composition rules
    assert auth.password_problems("x" * 64) == [] and auth.password_problems("长密码也可以使用的很好" * 6) == []
    assert auth.password_problems("y" * 129) != []
    for common in ("password", "Password1", "qwertyuiop", "1qaz2wsx", "iloveyou", "woaini1314", "88888888"):
        assert auth.password_problems(common), common
    assert auth.password_problems("correct horse battery staple") == []
    assert auth.password_problems("alice.wang", login="Alice.Wang")  # not the login itself
    assert 9_500 <= len(auth._common_passwords()) <= 10_500


def test_hash_is_argon2id_and_is_upgraded_at_login_when_parameters_rise(site: Site) -> None:
    stored = site.user("alice").password_hash
    assert stored.startswith("$argon2id$") and "m=19456,t=2,p=1" in stored
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(site.passwords["alice"])
    with site.platform.session() as db:
        db.execute(update(User).where(User.login == "alice").values(password_hash=weak))
    assert login(site.client(), "alice", site.passwords["alice"]).status_code == 303
    upgraded = site.user("alice").password_hash
    assert upgraded != weak and "m=19456,t=2,p=1" in upgraded
    assert site.audit("auth.login")[-1].detail == {"rehashed": True}
    assert login(site.client(), "alice", site.passwords["alice"]).status_code == 303  # the new hash works


# --- sessions -------------------------------------------------------------------------------


def test_login_rotates_the_session_and_logout_ends_it_on_the_server(site: Site) -> None:
    client = site.client()
    first = login(client, "alice", site.passwords["alice"])
    old_cookie = first.cookies[auth.SESSION_COOKIE]
    client.headers["X-CSRF-Token"] = csrf_of(client)  # logged in: a form post needs the token
    second = login(client, "alice", site.passwords["alice"])  # logging in again, same browser
    new_cookie = second.cookies[auth.SESSION_COOKIE]
    assert new_cookie != old_cookie
    stale = site.client()
    stale.cookies.set(auth.SESSION_COOKIE, old_cookie)
    assert stale.get("/", headers={"accept": "application/json"}).status_code == 401
    with site.platform.sessions() as db:  # only a hash of the cookie is stored
        assert db.get(AuthSession, hashlib.sha256(new_cookie.encode()).hexdigest()) is not None
        assert db.scalar(select(AuthSession).where(AuthSession.id_hash == new_cookie)) is None

    kept = site.client()
    kept.cookies.set(auth.SESSION_COOKIE, new_cookie)
    assert kept.get("/", follow_redirects=False).status_code == 200
    client.headers["X-CSRF-Token"] = csrf_of(client)
    assert client.post("/logout", follow_redirects=False).status_code == 303
    assert kept.get("/", headers={"accept": "application/json"}).status_code == 401
    page = kept.get("/admin/users", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert [e.actor_login for e in site.audit("auth.logout")] == ["alice"]


def test_password_change_ends_every_other_session(site: Site) -> None:
    phone, laptop = site.client("alice"), site.client("alice")
    weak = phone.post("/account/password", data={"current_password": site.passwords["alice"],
                                                 "new_password": "password1", "new_password_again": "password1"})
    assert weak.status_code == 422 and 'class="field-error"' in weak.text
    wrong = phone.post("/account/password", data={"current_password": "nope-nope", "new_password": "a new long secret",
                                                  "new_password_again": "a new long secret"})
    assert wrong.status_code == 422
    changed = phone.post("/account/password", data={"current_password": site.passwords["alice"],
                                                    "new_password": "a new long secret",
                                                    "new_password_again": "a new long secret"}, follow_redirects=False)
    assert changed.status_code == 303
    assert laptop.get("/", headers={"accept": "application/json"}).status_code == 401
    assert phone.get("/account", follow_redirects=False).status_code == 200  # this browser got a new session
    assert login(site.client(), "alice", site.passwords["alice"]).status_code == 401
    assert login(site.client(), "alice", "a new long secret").status_code == 303
    assert site.audit("auth.password")[-1].actor_login == "alice"


def test_idle_and_old_sessions_expire(site: Site) -> None:
    client = site.client("alice")
    with site.platform.session() as db:
        db.execute(update(AuthSession).values(last_seen_at=auth.utcnow() - timedelta(hours=13)))
    assert client.get("/", headers={"accept": "application/json"}).status_code == 401
    client = site.client("alice")
    with site.platform.session() as db:
        db.execute(update(AuthSession).values(created_at=auth.utcnow() - timedelta(days=8)))
    assert client.get("/", headers={"accept": "application/json"}).status_code == 401


# --- CSRF -----------------------------------------------------------------------------------


def test_state_changing_cookie_requests_need_the_token_and_our_origin(site: Site) -> None:
    client = site.client("boss")
    token = client.headers.pop("X-CSRF-Token")
    url = "/admin/roles/new"
    form = {"name": "clerk"}
    assert client.post(url, data=form).status_code == 403  # no token
    assert client.post(url, data={**form, "csrf_token": "forged"}).status_code == 403
    evil = client.post(url, data={**form, "csrf_token": token}, headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    del client.headers["origin"]
    assert client.post(url, data={**form, "csrf_token": token}).status_code == 403  # neither Origin nor Referer
    assert client.post(url, data={**form, "csrf_token": token},
                       headers={"referer": "http://testserver/admin/roles"}, follow_redirects=False).status_code == 303
    client.headers["origin"] = "http://testserver"
    assert client.post(url, data={"name": "clerk2"}, headers={"X-CSRF-Token": token},
                       follow_redirects=False).status_code == 303
    assert client.post(f"{url}?csrf_token={token}", files={"name": (None, "clerk3")},
                       follow_redirects=False).status_code == 303  # multipart: token in the query
    assert client.delete("/admin/roles/1", headers={"X-CSRF-Token": "nope"}).status_code == 403
    with site.platform.sessions() as db:
        assert set(db.scalars(text("SELECT name FROM kehu_role WHERE name LIKE 'clerk%'"))) == {"clerk", "clerk2",
                                                                                                 "clerk3"}


@pytest.mark.parametrize("target, lands", [("/admin/users?q=1", "/admin/users?q=1"), ("//evil.example/x", "/"),
                                           ("/\\evil.example", "/"), ("https://evil.example/", "/"),
                                           ("/%0d%0aSet-Cookie:x=1", "/%0d%0aSet-Cookie:x=1"), ("/\tx", "/")])
def test_after_login_only_local_paths_are_followed(site: Site, target: str, lands: str) -> None:
    assert login(site.client(), "alice", site.passwords["alice"], next_url=target).headers["location"] == lands


def test_a_login_form_posted_from_another_site_is_refused(site: Site) -> None:
    client = site.client()
    refused = client.post("/login", data={"login": "alice", "password": site.passwords["alice"]},
                          headers={"origin": "https://evil.example"}, follow_redirects=False)
    assert refused.status_code == 403 and auth.SESSION_COOKIE not in refused.cookies


# --- throttling -----------------------------------------------------------------------------


def test_ten_failures_lock_the_login_for_ten_minutes(site: Site) -> None:
    client = site.client()
    for _ in range(9):
        assert login(client, "alice", "wrong password").status_code == 401
    assert login(site.client(), "alice", site.passwords["alice"]).status_code == 303  # success clears the count
    for attempt in range(10):
        response = login(client, "alice", "wrong password")
        assert response.status_code == 401, attempt
    locked = login(client, "alice", site.passwords["alice"])  # even the right password waits
    assert locked.status_code == 429 and 540 <= int(locked.headers["retry-after"]) <= 600
    assert "10" in locked.text
    other = site.client(address="10.9.8.7")  # the lock is the account's, from any address
    assert login(other, "alice", site.passwords["alice"]).status_code == 429
    assert login(other, "boss", site.passwords["boss"]).status_code == 303  # other accounts are not affected
    assert [e.target for e in site.audit("auth.locked")] == ["login:alice"]
    assert len(site.audit("auth.login_failed")) == 19
    with site.platform.session() as db:  # ten minutes later
        db.execute(update(LoginThrottle).values(locked_until=auth.utcnow() - timedelta(seconds=1)))
    assert login(client, "alice", site.passwords["alice"]).status_code == 303


def test_responses_do_not_reveal_whether_an_account_exists(site: Site) -> None:
    def attempts(name: str) -> list[tuple[int, str]]:
        client = site.client(address=f"10.0.0.{len(name)}")
        seen = []
        for _ in range(11):
            response = login(client, name, "wrong password")
            body = re.sub(r'value="[^"]*"', "", response.text)  # the login typed is echoed back
            seen.append((response.status_code, body.replace(name, "NAME")))
        return seen

    existing, unknown = attempts("alice"), attempts("nobody-here")
    assert existing == unknown
    assert existing[0][0] == 401 and existing[-1][0] == 429
    failed = site.audit("auth.login_failed")
    assert {e.detail["reason"] for e in failed} == {"wrong password", "unknown login"}  # only the log knows


def test_unknown_logins_cost_as_much_time_as_wrong_passwords(site: Site) -> None:
    def timed(name: str) -> float:
        samples = []
        for i in range(7):
            started = time.perf_counter()
            result = auth.authenticate(site.platform, name, f"wrong {i}", address="")
            samples.append(time.perf_counter() - started)
            assert result.status == "failed"
        return statistics.median(samples)

    with site.platform.session() as db:
        db.execute(update(User).where(User.login == "boss").values(active=False))
    known, unknown, disabled = timed("alice"), timed("nobody-at-all"), timed("boss")
    assert 0.4 < known / unknown < 2.5 and 0.4 < known / disabled < 2.5, (known, unknown, disabled)


def test_many_failures_from_one_address_slow_it_down(site: Site) -> None:
    client = site.client()
    for i in range(auth.ADDRESS_FREE):  # different logins: no account gets locked
        assert login(client, f"guess{i}", "wrong password").status_code == 401
    assert login(client, "guess-last", "wrong password").status_code == 401  # one over: now it must wait
    slowed = login(client, "alice", site.passwords["alice"])
    assert slowed.status_code == 429 and 1 <= int(slowed.headers["retry-after"]) <= 2
    # Another web process on the same database sees the same state.
    second_process = _with_address(web_client(site.settings), "testclient")
    assert login(second_process, "alice", site.passwords["alice"]).status_code == 429
    assert login(site.client(address="192.0.2.1"), "alice", site.passwords["alice"]).status_code == 303
    with site.platform.session() as db:  # the wait grows with every further failure
        db.execute(update(LoginThrottle).where(LoginThrottle.kind == "address").values(locked_until=None))
    login(client, "guess-more", "wrong password")
    again = login(client, "alice", site.passwords["alice"])
    assert again.status_code == 429 and 3 <= int(again.headers["retry-after"]) <= 4
    with site.platform.sessions() as db:  # what people type into the login field is not kept in clear
        keys = set(db.scalars(select(LoginThrottle.key)))
        assert not any("guess" in key or "testclient" in key for key in keys)


# --- TOTP -----------------------------------------------------------------------------------


def _enrol(site: Site, name: str, client: Any = None) -> str:
    client = client or site.client(name)
    assert client.post("/account/totp/start", follow_redirects=False).status_code == 303
    page = client.get("/account/totp")
    uri = re.search(r'data-totp-uri>([^<]+)<', page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    secret = pyotp.parse_uri(uri).secret
    assert uri.startswith("otpauth://totp/Kehu:" + name) and "issuer=Kehu" in uri
    assert " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) in page.text
    wrong = client.post("/account/totp/confirm", data={"code": "000000"})
    assert wrong.status_code == 422
    done = client.post("/account/totp/confirm", data={"code": pyotp.TOTP(secret).now()}, follow_redirects=False)
    assert done.status_code == 303
    assert site.user(name).totp_enabled
    return secret


def test_totp_enrolment_login_and_replay_protection(site: Site) -> None:
    secret = _enrol(site, "alice")
    with site.platform.sessions() as db:  # the secret is sealed, not stored in clear
        raw = db.execute(text("SELECT totp_secret_sealed FROM kehu_user WHERE login = 'alice'")).scalar_one()
        assert secret.encode() not in bytes(raw)
    totp = pyotp.TOTP(secret)
    client = site.client()
    first = login(client, "alice", site.passwords["alice"], next_url="/account")
    assert first.status_code == 303 and first.headers["location"].startswith("/login/totp")
    # The password alone opens nothing.
    assert client.get("/", headers={"accept": "application/json"}).status_code == 401
    form = client.get(first.headers["location"])
    assert form.status_code == 200 and 'name="code"' in form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    assert client.post("/login/totp", data={"code": "123456", "csrf_token": token}).status_code == 401
    assert client.post("/login/totp", data={"code": totp.now(), "csrf_token": "forged"}).status_code == 403
    # The code used at enrolment cannot be used again: a later step is needed.
    now = time.time()
    next_step_code = totp.at(now + 30)
    ok = client.post("/login/totp", data={"code": next_step_code, "csrf_token": token, "next": "/account"},
                     follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/account"
    assert client.get("/account", follow_redirects=False).status_code == 200
    assert site.audit("auth.login")[-1].detail == {"second_factor": "totp"}

    replay = site.client()
    login(replay, "alice", site.passwords["alice"])
    token = re.search(r'name="csrf_token" value="([^"]+)"', replay.get("/login/totp").text).group(1)  # type: ignore[union-attr]
    assert replay.post("/login/totp", data={"code": next_step_code, "csrf_token": token}).status_code == 401
    assert replay.post("/login/totp", data={"code": totp.at(now - 30), "csrf_token": token}).status_code == 401


def test_enrolment_shows_a_qr_code_when_segno_is_installed(site: Site) -> None:
    pytest.importorskip("segno")
    client = site.client("alice")
    client.post("/account/totp/start")
    page = client.get("/account/totp")
    assert '<div class="totp-qr"' in page.text and "<svg" in page.text


def test_old_throttle_rows_are_purged(site: Site) -> None:
    client = site.client()
    login(client, "someone", "wrong password")
    with site.platform.session() as db:
        assert auth.purge_throttle(db) == 0  # still recent
        db.execute(update(LoginThrottle).values(last_failure_at=auth.utcnow() - timedelta(days=2)))
        assert auth.purge_throttle(db) == 2  # the login name's row and the address's row


def test_key_rotation_re_encrypts_totp_secrets(site: Site) -> None:
    from kehu import crypto

    secret = _enrol(site, "alice")
    with site.platform.sessions() as db:
        before = bytes(db.execute(text("SELECT totp_secret_sealed FROM kehu_user WHERE login = 'alice'")).scalar_one())
    new_key = crypto.start_rotation(site.platform)
    report = crypto.rotate(site.platform)
    assert report.left == 0 and report.rewritten >= 1
    with site.platform.sessions() as db:
        after = bytes(db.execute(text("SELECT totp_secret_sealed FROM kehu_user WHERE login = 'alice'")).scalar_one())
        user = db.scalar(select(User).where(User.login == "alice"))
        assert after != before and crypto.key_id_of(after) == new_key
        assert auth.totp_secret(user) == secret  # type: ignore[arg-type]


def test_totp_guessing_is_throttled(site: Site) -> None:
    _enrol(site, "alice")
    client = site.client()
    login(client, "alice", site.passwords["alice"])
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login/totp").text).group(1)  # type: ignore[union-attr]
    statuses = [client.post("/login/totp", data={"code": f"{n:06d}", "csrf_token": token}).status_code
                for n in range(10)]
    assert statuses[:9] == [401] * 9 and statuses[9] == 429
    assert client.get("/login/totp", follow_redirects=False).headers["location"].startswith("/login")  # session gone
    assert login(site.client(), "alice", site.passwords["alice"]).status_code == 429
    assert len(site.audit("auth.totp_failed")) == 10


def test_totp_codes_are_checked_against_steps() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    step = totp.timecode(__import__("datetime").datetime.fromtimestamp(now, auth.UTC))
    assert auth.totp_step(secret, totp.at(now), 0, now=now) == step
    assert auth.totp_step(secret, totp.at(now - 30), 0, now=now) == step - 1  # a little clock drift
    assert auth.totp_step(secret, totp.at(now - 90), 0, now=now) is None
    assert auth.totp_step(secret, totp.at(now), step, now=now) is None  # used already
    assert auth.totp_step(secret, "12345", 0, now=now) is None and auth.totp_step(secret, "abcdef", 0, now=now) is None


def test_turning_totp_off_needs_the_password(site: Site) -> None:
    client = site.client("alice")  # logged in before the second factor was turned on
    _enrol(site, "alice", client)
    assert client.post("/account/totp/disable", data={"password": "wrong"}).status_code == 422
    assert site.user("alice").totp_enabled
    assert client.post("/account/totp/disable", data={"password": site.passwords["alice"]},
                       follow_redirects=False).status_code == 303
    assert not site.user("alice").totp_enabled
    assert login(site.client(), "alice", site.passwords["alice"]).status_code == 303  # the password is enough again
    assert [e.detail["enabled"] for e in site.audit("auth.totp")] == [True, False]


# --- API tokens -----------------------------------------------------------------------------


def test_api_tokens_are_shown_once_stored_hashed_revocable_and_track_use(site: Site) -> None:
    client = site.client("alice")
    created = client.post("/account/tokens", data={"name": "ERP sync"})
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    raw = re.search(r"<code data-token>(kehu_[^<]+)</code>", created.text).group(1)  # type: ignore[union-attr]
    assert raw not in client.get("/account").text  # shown once
    with site.platform.sessions() as db:
        token = db.scalar(select(ApiToken))
        assert token is not None and token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert token.last_used_at is None and raw not in str(db.execute(text("SELECT * FROM kehu_api_token")).all())

    bearer = site.client()
    bearer.headers["authorization"] = f"Bearer {raw}"
    assert bearer.get("/", follow_redirects=False).status_code == 200
    assert bearer.get("/admin/users", headers={"accept": "application/json"}).status_code == 403  # alice's rights
    # A token cannot manage the account it belongs to (a stolen token must not mint more).
    assert bearer.post("/account/tokens", data={"name": "more"}).status_code == 403
    with site.platform.sessions() as db:
        assert db.scalar(select(ApiToken.last_used_at)) is not None

    bad = site.client()
    bad.headers["authorization"] = "Bearer kehu_not-a-real-token"
    answer = bad.get("/", follow_redirects=False)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthenticated"

    token_id = re.search(r'data-token-id="(\d+)"', client.get("/account").text).group(1)  # type: ignore[union-attr]
    assert site.client("boss").post(f"/account/tokens/{token_id}/revoke").status_code == 404  # not boss's token
    assert client.post(f"/account/tokens/{token_id}/revoke", follow_redirects=False).status_code == 303
    assert bearer.get("/", follow_redirects=False).status_code == 401
    assert [sorted(e.detail) for e in site.audit("auth.token")] == [["created", "name", "user"],
                                                                    ["name", "revoked", "user"]]


def test_bearer_requests_need_no_csrf_token_and_stop_when_the_user_is_disabled(site: Site) -> None:
    with site.platform.session() as db:
        raw = auth.issue_token(db, db.scalar(select(User).where(User.login == "boss")), "script")  # type: ignore[arg-type]
    bearer = site.client()
    bearer.headers["authorization"] = f"Bearer {raw}"
    created = bearer.post("/admin/roles/new", data={"name": "by_script"}, headers={"origin": "https://elsewhere"},
                          follow_redirects=False)
    assert created.status_code == 303
    with site.platform.session() as db:
        db.execute(update(User).where(User.login == "boss").values(active=False))
    assert bearer.get("/", follow_redirects=False).status_code == 401
