"""Who may do what with contacts: permissions, default roles, record rules, personal fields.

* ``contacts.read`` lets a user see the contacts they own; ``contacts.read_all`` every contact.
* ``contacts.write`` lets them create contacts and change those they own; ``contacts.write_all``
  change every contact they can see.
* ``contacts.view_sensitive`` shows phone numbers, e-mail addresses, WeChat ids and street
  addresses in full; without it they are masked (``138****8000``).
* ``contacts.export``, ``contacts.import``, ``contacts.merge``, ``contacts.delete``,
  ``contacts.privacy`` (a person's data export and erasure) and ``contacts.admin`` (custom
  fields) guard the operations they name.
"""

from __future__ import annotations

from typing import Any

from kehu.declarations import PersonalField, Permission, RecordRule, RoleTemplate

from .models import Contact, ContactPoint

READ = "contacts.read"
READ_ALL = "contacts.read_all"
WRITE = "contacts.write"
WRITE_ALL = "contacts.write_all"
VIEW_SENSITIVE = "contacts.view_sensitive"
EXPORT = "contacts.export"
IMPORT = "contacts.import"
MERGE = "contacts.merge"
DELETE = "contacts.delete"
PRIVACY = "contacts.privacy"
ADMIN = "contacts.admin"

PERMISSIONS = [
    Permission(READ, {"zh": "查看自己负责的客户", "en": "Read own contacts"}),
    Permission(READ_ALL, {"zh": "查看所有客户", "en": "Read every contact"}),
    Permission(WRITE, {"zh": "新建客户、修改自己负责的客户", "en": "Create contacts, change own contacts"}),
    Permission(WRITE_ALL, {"zh": "修改所有可见客户", "en": "Change every visible contact"}),
    Permission(VIEW_SENSITIVE, {"zh": "查看完整的电话、邮箱、微信与地址", "en": "See phones, e-mails, WeChat ids and addresses"}),
    Permission(EXPORT, {"zh": "导出客户", "en": "Export contacts"}),
    Permission(IMPORT, {"zh": "导入客户", "en": "Import contacts"}),
    Permission(MERGE, {"zh": "合并重复客户", "en": "Merge duplicate contacts"}),
    Permission(DELETE, {"zh": "删除客户", "en": "Delete contacts"}),
    Permission(PRIVACY, {"zh": "处理个人信息请求（导出、删除）", "en": "Handle personal data requests (export, erasure)"}),
    Permission(ADMIN, {"zh": "管理客户自定义字段", "en": "Manage custom contact fields"}),
]

ROLES = [
    RoleTemplate("sales", (READ, WRITE, VIEW_SENSITIVE), {"zh": "销售", "en": "Sales"}),
    RoleTemplate("viewer", (READ, READ_ALL), {"zh": "只读", "en": "Viewer"}),
]


def _own_contacts_only(user: Any) -> Any:
    """Without ``contacts.read_all`` a user sees only the contacts they own."""
    if user.can(READ_ALL):
        return None
    return Contact.owner_id == user.id


RECORD_RULES = [RecordRule(Contact, _own_contacts_only, name="contacts: own contacts unless read_all")]


def mask_address(value: str) -> str:
    return "****" if value else value


PERSONAL_FIELDS = [
    PersonalField(ContactPoint, "value", VIEW_SENSITIVE, WRITE),
    PersonalField(Contact, "street", VIEW_SENSITIVE, WRITE, mask=mask_address),
    PersonalField(Contact, "address_detail", VIEW_SENSITIVE, WRITE, mask=mask_address),
]


def may_change(user: Any, contact: Contact) -> bool:
    """Whether ``user`` may change ``contact`` (which the record rules already let them see)."""
    if user.can(WRITE_ALL):
        return True
    return user.can(WRITE) and contact.owner_id == user.id
