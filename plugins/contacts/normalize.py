"""Canonical forms of phone numbers, e-mail addresses and WeChat ids.

Contact points are stored encrypted and found through a blind index of their canonical form,
so ``138 0013 8000``, ``+86 138-0013-8000`` and ``0086 13800138000`` all index (and therefore
search) as ``+8613800138000``.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from kehu import crypto

from kehu.i18n import gettext as _

PHONE, EMAIL, WECHAT, OPENID = "phone", "email", "wechat", "openid"
#: Kinds of contact points, in the order forms and exports show them.
KINDS = (PHONE, EMAIL, WECHAT, OPENID)

DEFAULT_REGION = "CN"
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]{2,}$")
_WECHAT = re.compile(r"^[A-Za-z][-_A-Za-z0-9]{5,19}$")
_OPENID = re.compile(r"^[-_A-Za-z0-9]{10,64}$")
_PHONE_LIKE = re.compile(r"^[+()\d\s\-./]{5,}$")


class InvalidValue(ValueError):
    """A value that is not a phone number (e-mail address, ...); the message says why."""


def _clean(raw: str) -> str:
    # NFKC folds full-width digits and signs (１３８, ＠) that Chinese input methods produce.
    return unicodedata.normalize("NFKC", str(raw)).strip()


#: A Chinese mobile number as people write it: 11 digits starting with 1, perhaps after 86,
#: +86 or 0086, perhaps split by spaces, hyphens or dots.
_CN_MOBILE = re.compile(r"^(?:\+?86|0086)?(1\d{10})$")
_SEPARATORS = re.compile(r"[\s\-.]")
#: libphonenumber's own pattern of valid Chinese mobile numbers (the same metadata as parse()).
_CN_MOBILE_VALID = re.compile(phonenumbers.PhoneMetadata.metadata_for_region(DEFAULT_REGION).mobile
                              .national_number_pattern)


def phone(raw: str) -> str:
    """``138 0013 8000`` → ``+8613800138000`` (E.164; numbers without a country code are Chinese)."""
    text = _clean(raw)
    mobile = _CN_MOBILE.match(_SEPARATORS.sub("", text))
    if mobile and _CN_MOBILE_VALID.fullmatch(mobile.group(1)):  # the common case, without parsing (imports)
        return "+86" + mobile.group(1)
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise InvalidValue(_("Not a phone number.")) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(_("Not a phone number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(raw: str) -> str:
    text = _clean(raw).lower()
    if not _EMAIL.match(text) or len(text) > 254:
        raise InvalidValue(_("Not an e-mail address."))
    return text


def wechat(raw: str) -> str:
    """A WeChat id (微信号): 6-20 letters, digits, ``-`` or ``_``, starting with a letter."""
    text = _clean(raw)
    if not _WECHAT.match(text):
        raise InvalidValue(_("Not a WeChat id (6-20 letters, digits, - or _, starting with a letter)."))
    return text.lower()


def openid(raw: str) -> str:
    """An Official Account OpenID: case-sensitive, kept as it is."""
    text = _clean(raw)
    if not _OPENID.match(text):
        raise InvalidValue(_("Not a WeChat OpenID."))
    return text


_NORMALIZERS = {PHONE: phone, EMAIL: email, WECHAT: wechat, OPENID: openid}


def canonical(kind: str, raw: str) -> str:
    """The canonical form of ``raw`` as a ``kind`` point; raises :class:`InvalidValue`."""
    return _NORMALIZERS[kind](raw)


def looks_like_phone(text: str) -> bool:
    """Whether a search term should be looked up as a phone number."""
    cleaned = _clean(text)
    return bool(_PHONE_LIKE.match(cleaned)) and sum(c.isdigit() for c in cleaned) >= 5


def display_phone(e164: str) -> str:
    """``+8613800138000`` → ``138 0013 8000``; other countries in international format."""
    if len(e164) == 14 and e164.startswith("+861"):  # a Chinese mobile number: no need to parse it
        return f"{e164[3:6]} {e164[6:10]} {e164[10:]}"
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code == 86:
        national = str(number.national_number)
        if len(national) == 11 and national.startswith("1"):
            return f"{national[:3]} {national[3:7]} {national[7:]}"
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def search_keys(text: str) -> list[tuple[str, str]]:
    """The ``(kind, canonical value)`` pairs a search term could be, for exact look-ups."""
    keys: list[tuple[str, str]] = []
    for kind in KINDS:
        if kind == PHONE and not looks_like_phone(text):
            continue
        try:
            keys.append((kind, canonical(kind, text)))
        except InvalidValue:
            continue
    return keys


def lookup(kind: str, canonical: str) -> str:
    """The blind index of a contact point's canonical form (64 bits: see kehu.crypto.blind_index).

    Equal canonical values give equal indexes; search decrypts the candidates and compares, so
    results stay exact.
    """
    return crypto.blind_index(f"{kind}:{canonical}", bits=64)
