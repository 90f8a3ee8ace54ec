"""Importing contacts: GBK CSV and XLSX, header mapping, bad rows with line numbers, dry run,
re-import updating instead of duplicating, the command line, and the web/API background job."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import func, select

from kehu.models import AuditEntry, OutboxEvent
from kehu_plugins.contacts import importer, tasks
from kehu_plugins.contacts.models import Contact
from tests.contacts_support import SQLITE_ONLY, Crm, crm, english, sqlite_template  # noqa: F401

GBK_CSV = """姓名;手机;电话;邮箱;公司;职位;省;市;区;地址;标签;备注;阶段
王芳;138 1111 0001;021-6888 0001;wangfang@example.cn;上海云帆;采购经理;上海市;上海市;浦东新区;世纪大道100号;VIP，展会;"第一行
第二行";客户
;13811110002;;;无名公司;;;;;;;;
李强;12345;;;;;;;;;;;
赵丽;13811110004;;not-an-email;;;;;;;;;
陈静;+86 138-1111-0005;;chen@example.cn;杭州青禾;创始人;浙江省;杭州市;西湖区;龙井路18号;茶叶;;潜在客户
""".replace("\n", "\r\n")


def _write_gbk(tmp_path: Path) -> Path:
    path = tmp_path / "客户.csv"
    path.write_bytes(GBK_CSV.encode("gbk"))
    return path


def _contacts(crm: Crm) -> int:
    with crm.platform.sessions() as db:
        return db.scalar(select(func.count()).select_from(Contact).where(Contact.kind == "person")) or 0


def test_reads_gbk_csv_with_sniffed_dialect_and_maps_chinese_headers(tmp_path: Path) -> None:
    table = importer.read_table(_write_gbk(tmp_path))
    assert table.headers[:3] == ["姓名", "手机", "电话"]
    assert [line for line, _cells in table.rows] == [2, 4, 5, 6, 7]  # the quoted line break spans line 3
    assert table.rows[0][1][11] == "第一行\r\n第二行" or table.rows[0][1][11] == "第一行\n第二行"
    mapping = importer.guess_mapping(table.headers, [])
    assert [mapping.get(str(i)) for i in range(13)] == [
        "name", "phones", "phones", "emails", "company", "position", "province", "city", "district", "street",
        "tags", "notes", "stage"]
    english = importer.guess_mapping(["Full Name", "Mobile", "E-mail", "Company", "Job Title", "City", "Foo"], [])
    assert english == {"0": "name", "1": "phones", "2": "emails", "3": "company", "4": "position", "5": "city"}


def test_dry_run_then_import_then_reimport_updates(crm: Crm, tmp_path: Path, english: None) -> None:
    table = importer.read_table(_write_gbk(tmp_path))
    mapping = importer.guess_mapping(table.headers, [])
    boss = crm.user("boss")

    dry = importer.Importer(crm.platform, boss, mapping, dry_run=True).run(table)
    assert (dry.created, dry.updated, dry.rejected) == (2, 0, 3)
    assert [(p.line, p.reason.split(":")[0]) for p in dry.problems] == [(4, "Name"), (5, "Phone"), (6, "E-mail")]
    assert _contacts(crm) == 0  # a dry run writes nothing

    report = importer.Importer(crm.platform, boss, mapping).run(table, file_name="客户.csv")
    assert (report.created, report.updated, report.rejected) == (2, 0, 3)
    assert _contacts(crm) == 2
    api = crm.client("boss")
    wang = api.get("/api/contacts/", params={"q": "021 6888 0001"}).json()["items"][0]
    assert wang["name"] == "王芳" and wang["phones"] == ["138 1111 0001", "021 6888 0001"]
    assert wang["tags"] == ["VIP", "展会"] and wang["stage"] == "customer" and wang["company"] == "上海云帆"
    assert wang["notes"].replace("\r\n", "\n") == "第一行\n第二行"
    assert api.get("/api/contacts/", params={"q": "陈静"}).json()["items"][0]["stage"] == "lead"
    with crm.platform.sessions() as db:
        assert db.scalar(select(Contact.id).where(Contact.name == "无名公司")) is None  # rejected row: nothing
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "contacts.import")).one()
        assert entry.detail["created"] == 2 and entry.target == "客户.csv"
        # One event announces the batch: the new people and the companies their rows named.
        event = db.scalars(select(OutboxEvent).where(OutboxEvent.name == "contact.imported")).one()
        assert sorted(event.payload["created"]) == sorted(db.scalars(select(Contact.id)))
        assert event.payload["updated"] == [] and len(event.payload["created"]) == 4
        assert not db.scalars(select(OutboxEvent).where(OutboxEvent.name == "contact.created")).all()

    again = importer.Importer(crm.platform, boss, mapping).run(table)
    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 2, 3)
    changed = table.rows[0][1].copy()
    changed[7] = "苏州市"
    changed[1] = "13811119999"
    again = importer.Importer(crm.platform, boss, mapping).run(importer.Table(table.headers, [(2, changed)]))
    assert (again.created, again.updated) == (0, 1)
    wang = api.get(f"/api/contacts/{wang['id']}").json()
    assert wang["city"] == "苏州市"
    assert wang["phones"] == ["138 1111 0001", "021 6888 0001", "138 1111 9999"]  # added, none lost
    assert _contacts(crm) == 2


@pytest.mark.parametrize(("encoding", "delimiter"), [("utf-8-sig", ","), ("gb18030", ","), ("utf-16", "\t"),
                                                    ("utf-8", ";")])
def test_reads_the_encodings_and_dialects_spreadsheets_write(tmp_path: Path, encoding: str, delimiter: str) -> None:
    """UTF-8 with a BOM (Excel's "CSV UTF-8"), GB18030 with characters outside GBK, UTF-16 with
    tabs (Excel's "Unicode text"), semicolons."""
    rows = [["姓名", "手机", "邮箱"], ["䶮䶮", "13811112222", "a@example.com"], ["𠀀明", "13811113333", ""]]
    path = tmp_path / "people.csv"
    path.write_bytes("\r\n".join(delimiter.join(row) for row in rows).encode(encoding))
    table = importer.read_table(path)
    assert table.headers == rows[0]
    assert [cells for _line, cells in table.rows] == rows[1:]
    assert importer.guess_mapping(table.headers, []) == {"0": "name", "1": "phones", "2": "emails"}


def test_xlsx_with_numbers_for_phones_and_a_bad_row(crm: Crm, tmp_path: Path, english: None) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Name", "Mobile", "Email", "Company", "Title", "City", "Tags", "Owner"])
    sheet.append(["Li Lei", 13822220001, "lilei@example.com", "Acme", "CTO", "Beijing", "a, b", "alice"])
    sheet.append(["Han Meimei", 13822220002.0, "", "Acme", "", "Beijing", "", "nobody"])
    sheet.append([None, None, None, None, None, None, None, None])
    sheet.append(["Jim", "13822220003", None, None, None, None, None, None])
    path = tmp_path / "people.xlsx"
    workbook.save(path)

    table = importer.read_table(path)
    assert table.rows[0][1][1] == "13822220001" and [line for line, _ in table.rows] == [2, 3, 5]
    mapping = importer.guess_mapping(table.headers, [])
    report = importer.Importer(crm.platform, crm.user("boss"), mapping).run(table)
    assert (report.created, report.rejected) == (2, 1)
    assert report.problems[0].line == 3 and "nobody" in report.problems[0].reason
    li = crm.client("boss").get("/api/contacts/", params={"q": "138 2222 0001"}).json()["items"][0]
    assert li["owner_id"] == crm.ids["alice"] and li["tags"] == ["a", "b"]


def test_salesperson_import_never_touches_others_contacts(crm: Crm, tmp_path: Path, english: None) -> None:
    crm.create("bob", name="鲍勃的", phone="13833330001")
    crm.add_user("importer", roles=("sales",), permissions=("contacts.import",))
    table = importer.Table(["姓名", "手机"], [(2, ["冒名", "13833330001"]), (3, ["新人", "13833330002"])])
    report = importer.Importer(crm.platform, crm.user("importer"), {"0": "name", "1": "phones"}).run(table)
    assert (report.created, report.updated, report.rejected) == (1, 0, 1)
    assert "may not change" in report.problems[0].reason
    assert crm.client("bob").get("/api/contacts/", params={"q": "13833330001"}).json()["items"][0]["name"] == "鲍勃的"


@SQLITE_ONLY
def test_command_line_import_with_mapping_correction(crm: Crm, tmp_path: Path) -> None:
    from kehu_plugins.contacts.cli import contacts

    path = _write_gbk(tmp_path)
    runner = CliRunner()
    dry = runner.invoke(contacts, ["import", str(path), "--dry-run", "--mapping", "备注=", "-m", "M=source"])
    assert dry.exit_code == 0, dry.output
    assert "2 would be created" in dry.output and "3 rejected" in dry.output and "line 5:" in dry.output
    assert _contacts(crm) == 0
    done = runner.invoke(contacts, ["import", str(path), "--user", "boss", "-m", "备注=", "-m", "M=source"])
    assert done.exit_code == 0, done.output
    wang = crm.client("boss").get("/api/contacts/", params={"q": "13811110001"}).json()["items"][0]
    assert wang["notes"] == "" and wang["source"] == "客户" and wang["owner_id"] == crm.ids["boss"]
    bad = runner.invoke(contacts, ["import", str(path), "-m", "nope=name"])
    assert bad.exit_code != 0 and "no column nope" in bad.output


def test_web_import_runs_as_a_job_with_progress_and_error_report(crm: Crm, tmp_path: Path) -> None:
    known = crm.create("boss", name="王芳（老客户）", phone="13811110001")  # line 2 of the file has her number
    boss = crm.client("boss")
    page = boss.get("/contacts/import")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    uploaded = boss.post("/contacts/import", files={"file": ("客户.csv", GBK_CSV.encode("gbk"), "text/csv")},
                         follow_redirects=False)
    assert uploaded.status_code == 303, uploaded.text
    job_url = uploaded.headers["location"]
    job_id = int(job_url.rsplit("/", 1)[1])
    mapping_page = boss.get(job_url)
    assert mapping_page.status_code == 200 and "王芳" in mapping_page.text  # sample values
    with crm.platform.sessions() as db:
        job = db.get(tasks.ImportJob, job_id)
        assert (crm.settings.home / "attachments" / "imports" / job.stored_name).exists()
        form = {f"map.{column}": name for column, name in job.mapping.items()}

    started = boss.post(f"{job_url}/start", data={**form, "mode": "dry_run"}, follow_redirects=False)
    assert started.status_code == 303
    progress = boss.get(f"{job_url}/progress")
    assert 'data-status="queued"' in progress.text and 'hx-trigger="every 1s"' in progress.text  # keeps polling
    tasks.run_import(job_id=job_id, acting_user_id=crm.ids["boss"])  # what the worker does
    progress = boss.get(f"{job_url}/progress")
    assert 'data-status="done"' in progress.text and "hx-trigger" not in progress.text
    assert _contacts(crm) == 1  # the dry run wrote nothing...
    # ...and flagged the row that matches an existing contact, before anything is saved.
    assert f'<a href="/contacts/{known["id"]}">#{known["id"]}</a>' in progress.text and "将更新" in progress.text
    status = boss.get(f"/api/contacts/imports/{job_id}").json()
    assert status["matches"] == [{"line": 2, "contact_id": known["id"], "action": "updated"}]
    assert (status["created"], status["updated"], status["rejected"]) == (1, 1, 3)

    boss.post(f"{job_url}/start", data={**form, "mode": "import"})
    tasks.run_import(job_id=job_id, acting_user_id=crm.ids["boss"])
    tasks.run_import(job_id=job_id, acting_user_id=crm.ids["boss"])  # delivered twice: runs once
    assert _contacts(crm) == 2
    report = boss.get(f"{job_url}/errors.csv")
    assert report.status_code == 200 and report.content.startswith(b"\xef\xbb\xbf")
    lines = report.content.decode("utf-8-sig").splitlines()
    assert lines[1].startswith("4,") and lines[2].startswith("5,") and "12345" in lines[2]
    assert crm.client("alice").get(job_url).status_code == 403  # alice may not import at all
    crm.add_user("other_importer", permissions=("contacts.read", "contacts.write", "contacts.import"))
    assert crm.client("other_importer").get(job_url).status_code == 404  # not their job


def test_api_import_upload_status_and_errors(crm: Crm) -> None:
    boss = crm.client("boss")
    csv_bytes = "name,phone\n甲,13855550001\n乙,oops\n".encode()
    response = boss.post("/api/contacts/imports", files={"file": ("a.csv", csv_bytes, "text/csv")},
                         data={"start": "import"})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["mapping"] == {"0": "name", "1": "phones"} and job["total"] == 2
    tasks.run_import(job_id=job["id"], acting_user_id=crm.ids["boss"])
    status = boss.get(f"/api/contacts/imports/{job['id']}").json()
    assert (status["status"], status["created"], status["rejected"]) == ("done", 1, 1)
    assert status["errors"] == [{"line": 3, "reason": status["errors"][0]["reason"]}]
    errors = boss.get(f"/api/contacts/imports/{job['id']}/errors")
    assert "oops" in errors.content.decode("utf-8-sig")
    bad = boss.post("/api/contacts/imports", files={"file": ("a.pdf", b"%PDF", "application/pdf")})
    assert bad.status_code == 422 and "file" in bad.json()["error"]["fields"]
    restart = boss.post(f"/api/contacts/imports/{job['id']}/start", json={"dry_run": True, "mapping": {"1": "name"}})
    assert restart.status_code == 200 and restart.json()["mapping"] == {"1": "name"}
    assert boss.post(f"/api/contacts/imports/{job['id']}/start", json={"mapping": {"7": "name"}}).status_code == 422


def test_exported_file_imports_back_without_duplicates(crm: Crm) -> None:
    crm.create("boss", name="往返", phone="13866660001", email="rt@example.com", tags=["x"], city="上海市",
               stage="customer", company="往返公司")
    exported = crm.client("boss").get("/api/contacts/export", params={"format": "xlsx"})
    path = Path(crm.settings.home) / "roundtrip.xlsx"
    path.write_bytes(exported.content)
    table = importer.read_table(path)
    mapping = importer.guess_mapping(table.headers, [])
    report = importer.Importer(crm.platform, crm.user("boss"), mapping).run(table)
    assert report.created == 0 and report.rejected == 0, report.problems
    assert io.BytesIO(exported.content).read(2) == b"PK"


def test_a_row_failing_while_written_leaves_nothing_behind(crm: Crm, english: None) -> None:
    """Rows are written in batches; when one fails half-way (here: the database refuses the
    contact after its new company was written), its batch is imported again row by row."""
    from sqlalchemy import text

    refuse = {
        "sqlite": ["CREATE TRIGGER refuse_bad_row BEFORE INSERT ON contacts_contact WHEN NEW.name = '坏行' "
                   "BEGIN SELECT RAISE(ABORT, 'the database refused the row'); END"],
        "postgresql": ["CREATE FUNCTION refuse_bad_row() RETURNS trigger AS $$ BEGIN IF NEW.name = '坏行' THEN "
                       "RAISE EXCEPTION 'the database refused the row'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
                       "CREATE TRIGGER refuse_bad_row BEFORE INSERT ON contacts_contact FOR EACH ROW "
                       "EXECUTE FUNCTION refuse_bad_row()"],
    }[crm.platform.engine.dialect.name]
    with crm.platform.session() as db:
        for statement in refuse:
            db.execute(text(statement))
    table = importer.Table(["姓名", "手机", "公司"], [(2, ["好一", "13877770001", "好公司"]),
                                                       (3, ["坏行", "13877770002", "只属于坏行的公司"]),
                                                       (4, ["好二", "13877770003", "好公司"])])
    report = importer.Importer(crm.platform, crm.user("boss"), {"0": "name", "1": "phones", "2": "company"}).run(table)
    assert (report.created, report.rejected) == (2, 1)
    assert report.problems[0].line == 3 and "could not be saved" in report.problems[0].reason
    assert "13877770002" not in report.problems[0].reason  # the reason repeats no personal data
    with crm.platform.sessions() as db:
        names = set(db.scalars(select(Contact.name)))
    assert names == {"好一", "好二", "好公司"}  # not the bad row's company either


@SQLITE_ONLY
def test_old_uploads_are_purged(crm: Crm) -> None:
    from datetime import timedelta

    from kehu.db import utcnow

    boss = crm.client("boss")
    job = boss.post("/api/contacts/imports", files={"file": ("a.csv", b"name\nx\n", "text/csv")}).json()
    with crm.platform.sessions() as db:
        path = tasks.stored_path(crm.platform, db.get(tasks.ImportJob, job["id"]))
    tasks.purge_old_imports()  # too young: kept
    assert path.exists()
    with crm.platform.session() as db:
        db.get(tasks.ImportJob, job["id"]).created_at = utcnow() - timedelta(days=8)
    tasks.purge_old_imports()
    assert not path.exists() and boss.get(f"/api/contacts/imports/{job['id']}").status_code == 404
