"""The web UI's Jinja environment prints values escaped exactly as Jinja's own does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup, escape

from kehu.jinja import KehuEnvironment, escape_output, install_translations


class Html:
    def __html__(self) -> str:
        return "<b>as it says</b>"


@given(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none(), st.booleans(),
                 st.text().map(Markup), st.lists(st.text(max_size=5), max_size=3)))
def test_escape_output_gives_the_text_of_markupsafes_escape(value: Any) -> None:
    assert escape_output(value) == str(escape(value))


def test_an_object_with_html_is_printed_as_it_says() -> None:
    assert escape_output(Html()) == "<b>as it says</b>"


TRANSLATIONS = {"Hello %(name)s": "你好，%(name)s", "100%% sure": "百分之百", "%(num)s item": "%(num)s 项"}


def translated(message: str) -> str:
    return TRANSLATIONS.get(message, message)


def plural(singular: str, many: str, n: int) -> str:
    return singular if n == 1 else many


TEMPLATES = {
    "page.html": (
        "{% import 'macros.html' as m %}"
        "<p title=\"{{ title }}\">{{ text }} {{ number }} {{ missing }} {{ html }} {{ raw | safe }}</p>"
        "{{ m.row(text) }}{{ text ~ '<i>' }}{{ text | upper }}{{ '<const>' }}"
        "{% autoescape false %}{{ raw }}{% endautoescape %}"
        "{% set joined %}<u>{{ text }}</u>{% endset %}{{ joined }}"
        "{% for item in items %}<li>{{ loop.index }} {{ item }}</li>{% endfor %}"
        "{{ _('Hello %(name)s', name=text) }} {{ _('100%% sure') }}"
        "{% trans n=number %}{{ n }} item{% pluralize %}{{ n }} items{% endtrans %}"
        "{{ ngettext('%(num)s file', '%(num)s files', 2) }}"
        # Includes: written out, captured, chosen from a list, by a name in a variable, missing,
        # without the context, in a loop (the loop's variable passed on), inside a block.
        "{% include 'row.html' %}{% set captured %}[{% include 'row.html' %}]{% endset %}{{ captured }}"
        "{% include ['absent.html', 'row.html'] %}{% include row_template %}"
        "{% include 'absent.html' ignore missing %}{% include 'row.html' without context %}"
        "{% for item in items %}{% include 'item.html' %}{% endfor %}"
        "{% block inside %}{% include 'row.html' %}{% endblock %}"
    ),
    "row.html": "<tr><td>{{ text }}</td>{% for i in items %}<td>{{ i }}</td>{% endfor %}</tr>",
    # A layout and a page that extends it (statically, or as chosen at run time), a call block.
    "layout.html": "<h1>{{ title }}</h1>{% block body %}<i>{{ text }}</i> default{% endblock %}<hr>{{ number }}!",
    "child.html": "{% extends 'layout.html' %}{% block body %}<b>{{ text }}</b> {{ number }} {{ super() }}{% endblock %}",
    "chosen.html": "{% if title %}{% extends 'layout.html' %}{% endif %}<p>{{ text }} {{ number }}</p>"
                   "{% block body %}[{{ text }}|{{ html }}]{% endblock %}",
    "called.html": "{% import 'macros.html' as m %}{% call m.wrap(text) %}{{ text }} {{ number }}{% endcall %}",
    "item.html": "<i>{{ item }}</i>",
    "plain.txt": "{{ _('Hello %(name)s', name=text) }} {{ text }}",
    "macros.html": "{% macro row(value) %}<td>{{ value }}</td>{% endmacro %}"
                   "{% macro wrap(value) %}<div title=\"{{ value }}\">{{ caller() }} {{ value }}</div>{% endmacro %}",
}


@pytest.mark.parametrize("context", [
    {"title": "a\"b'c", "text": "<script>&", "number": 3.5, "html": Html(), "raw": "<em>raw</em>",
     "items": ["<x>", 1, None, Markup("<ok>")], "row_template": "row.html"},
    {"title": "", "text": "王芳 & 上海", "number": 0, "html": Markup("<b>m</b>"), "raw": "", "items": [],
     "row_template": ["absent.html", "item.html"]},
])
def test_pages_render_the_same_as_with_jinjas_environment(context: dict[str, Any]) -> None:
    def render(environment_class: type[Environment]) -> str:
        environment = environment_class(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                                        extensions=["jinja2.ext.i18n"])
        if environment_class is KehuEnvironment:
            install_translations(environment, translated, plural)
        else:
            environment.install_gettext_callables(translated, plural, newstyle=True)  # type: ignore[attr-defined]
        return "\n".join(environment.get_template(name).render(context)
                         for name in ("page.html", "plain.txt", "child.html", "chosen.html", "called.html"))

    ours = render(KehuEnvironment)
    assert ours == render(Environment)
    # Escaped where it should be, raw where asked:
    assert f"<td>{escape(context['text'])}</td>" in ours and f"{context['raw']}</p>" in ours
