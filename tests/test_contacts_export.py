"""Exporting contacts: CSV and XLSX of exactly what the user may see, masked as on screen, audited."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook
from sqlalchemy import select

from kehu.models import AuditEntry
from tests.contacts_support import Crm, crm, sqlite_template  # noqa: F401


def _csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with the BOM
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def _setup(crm: Crm) -> None:
    crm.create("boss", name="甲", phone="13812345678", email="jia@example.com", street="南京路1号", tags=["VIP"],
               city="上海市")
    crm.create("alice", name="乙", phone="13912345678", city="杭州市")
    crm.create("boss", name="=HYPERLINK(\"http://evil\")", city="上海市")


def test_csv_export_of_everything_for_an_administrator(crm: Crm) -> None:
    _setup(crm)
    response = crm.client("boss").get("/api/contacts/export", params={"format": "csv", "city": "上海市"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = _csv_rows(response.content)
    header, body = rows[0], rows[1:]
    assert header[:3] == ["ID", "姓名", "个人或公司"]
    by_name = {row[1]: row for row in body}
    assert set(by_name) == {"甲", "'=HYPERLINK(\"http://evil\")"}  # formula injection defused
    jia = by_name["甲"]
    assert "138 1234 5678" in jia and "jia@example.com" in jia and "南京路1号" in jia and "VIP" in jia
    with crm.platform.sessions() as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "contacts.export")).one()
    assert entry.actor_login == "boss"
    assert entry.detail == {"format": "csv", "count": 2, "searched": False, "masked": False,
                            "filters": {"city": "上海市"}}


def test_export_is_masked_and_restricted_like_the_screen(crm: Crm) -> None:
    _setup(crm)
    crm.add_user("auditor", permissions=("contacts.read", "contacts.read_all", "contacts.export"))
    crm.add_user("own_exporter", roles=("sales",), permissions=("contacts.export",))
    crm.create("own_exporter", name="丙", phone="13612345678")

    masked = _csv_rows(crm.client("auditor").get("/api/contacts/export").content)
    jia = next(row for row in masked if row[1] == "甲")
    assert "138****5678" in jia and "j***@example.com" in jia and "****" in jia
    assert not any("13812345678" in cell or "南京路" in cell for row in masked for cell in row)
    assert len(masked) == 1 + 4  # every contact (three, and 丙) ...plus the header

    own = _csv_rows(crm.client("own_exporter").get("/api/contacts/export").content)
    assert [row[1] for row in own[1:]] == ["丙"]
    assert "136 1234 5678" in own[1]  # their own contact, and sales see personal fields

    assert crm.client("alice").get("/api/contacts/export").status_code == 403
    assert crm.client("vera").get("/api/contacts/export").status_code == 403


def test_xlsx_export_and_the_list_page_button(crm: Crm) -> None:
    _setup(crm)
    boss = crm.client("boss")
    response = boss.get("/api/contacts/export", params={"format": "xlsx", "q": "甲"})
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).worksheets[0]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert len(rows) == 2 and rows[1][1] == "甲" and rows[1][5] == "138 1234 5678"
    assert boss.get("/api/contacts/export", params={"format": "pdf"}).status_code == 422

    page = boss.get("/contacts/", params={"city": "上海市"})
    assert 'action="/contacts/export?city=' in page.text
    download = boss.post("/contacts/export?city=%E4%B8%8A%E6%B5%B7%E5%B8%82", data={"format": "csv"})
    assert download.status_code == 200 and len(_csv_rows(download.content)) == 3
    assert 'action="/contacts/export' not in crm.client("alice").get("/contacts/").text
    assert crm.client("alice").post("/contacts/export", data={"format": "csv"}).status_code == 403
