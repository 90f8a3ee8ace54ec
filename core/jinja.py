"""The Jinja environment class of the web UI: Jinja's own, with a cheaper escape of what a
template prints.

In an autoescaped template, Jinja compiles ``{{ value }}`` to ``escape(value)``: MarkupSafe's
escape builds a :class:`~markupsafe.Markup` through a Python-level ``__new__`` for every printed
value, which was a fifth of the contact list page's time (a thousand values on a page of 50
rows). What is printed is only joined into the page, so it needs the escaped text, not a
``Markup`` object: :class:`KehuEnvironment` compiles printed values to :func:`escape_output`,
which gives the same text. Two more changes to the generated code, for the same output:
a run of text and values is joined and yielded once (Jinja yields each piece), and an
``{% include %}`` hands the included template's pieces on with ``yield from`` (or
``list.extend`` inside ``{% set %}``) where Jinja loops over them in Python. Everything else
(filters, ``Markup``, macros, ``|safe``) is Jinja's; ``tests/test_jinja.py`` renders the same
templates with both environments and compares.

``_()`` in a template is Jinja's newstyle gettext (see :func:`install_translations`) without
the alias that looks ``gettext`` up in the template's context and calls it through it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from markupsafe import Markup

try:  # MarkupSafe's C escaping, the one its ``escape`` uses
    from markupsafe import _escape_inner as _escape_text  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a MarkupSafe without it
    from markupsafe import escape as _escape

    def _escape_text(text: str) -> str:
        return str(_escape(text))


def escape_output(value: Any) -> str:
    """``value`` as HTML: text escaped, an object with ``__html__`` (``Markup``) as it says.
    The same text as ``str(markupsafe.escape(value))``."""
    kind = type(value)
    if kind is str:
        return _escape_text(value)
    if kind is Markup:  # translated labels, already escaped
        return value
    if kind is int:  # ids: nothing to escape
        return str(value)
    html = getattr(value, "__html__", None)
    if html is not None:
        return html()  # type: ignore[no-any-return]
    return _escape_text(str(value))


class _OutputEscapingCodeGenerator(CodeGenerator):
    def _output_child_pre(self, node: Any, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.autoescape and not frame.eval_ctx.volatile:
            self.write("environment.escape_output(")
            if finalize.src is not None:
                self.write(finalize.src)
        else:
            super()._output_child_pre(node, frame, finalize)

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        # Jinja yields each piece of a run of text and values on its own: a list row is some
        # thirty yields, each a round trip into the generator. Here a run is joined and
        # yielded once; inside {% set %} blocks, macros and the like, Jinja's own way is kept.
        if frame.buffer is not None or frame.require_output_check or len(node.nodes) < 2:
            super().visit_Output(node, frame)
            return
        finalize = self._make_finalize()
        body: list[list[Any] | nodes.Expr] = []
        for child in node.nodes:  # constants evaluated at compile time, as Jinja does
            try:
                if not (finalize.const or isinstance(child, nodes.TemplateData)):
                    raise nodes.Impossible()
                const = self._output_child_to_const(child, frame, finalize)
            except (nodes.Impossible, Exception):
                body.append(child)
                continue
            if body and isinstance(body[-1], list):
                body[-1].append(const)
            else:
                body.append([const])
        if len(body) == 1:  # all constant
            self.writeline("yield " + self._output_const_repr(body[0]))  # type: ignore[arg-type]
            return
        self.writeline("yield ''.join((")
        self.indent()
        for item in body:
            if isinstance(item, list):
                self.writeline(self._output_const_repr(item) + ",")
            else:
                self.newline(item)
                self._output_child_pre(item, frame, finalize)
                self.visit(item, frame)
                self._output_child_post(item, frame, finalize)
                self.write(",")
        self.outdent()
        self.writeline("))")

    def visit_Include(self, node: nodes.Include, frame: Frame) -> None:
        # Jinja passes each piece of an included template on in a Python loop ("for event in
        # gen: yield event"); a list page includes its rows, a couple of thousand pieces.
        # Here they go on through ``yield from`` or ``list.extend``, the rest as Jinja does it.
        if node.ignore_missing or not node.with_context or self.environment.is_async:
            super().visit_Include(node, frame)
            return
        template = node.template
        if isinstance(template, nodes.Const) and isinstance(template.value, str):
            func_name = "get_template"
        elif isinstance(template, nodes.Tuple | nodes.List) or (
                isinstance(template, nodes.Const) and isinstance(template.value, tuple | list)):
            func_name = "select_template"
        else:
            func_name = "get_or_select_template"
        self.writeline(f"template = environment.{func_name}(", node)
        self.visit(template, frame)
        self.write(f", {self.name!r})")
        self.writeline("gen = template.root_render_func(template.new_context(context.get_all(), True, "
                       f"{self.dump_local_context(frame)}))")
        self.writeline("try:")
        self.indent()
        self.writeline("yield from gen" if frame.buffer is None else f"{frame.buffer}.extend(gen)")
        self.outdent()
        self.writeline("finally: gen.close()")


class KehuEnvironment(Environment):
    """A Jinja :class:`~jinja2.Environment` whose templates escape printed values with
    :func:`escape_output`."""

    code_generator_class = _OutputEscapingCodeGenerator
    escape_output = staticmethod(escape_output)


#: Translations without variables kept formatted (a page prints dozens of labels).
TRANSLATIONS_REMEMBERED = 10_000


def install_translations(environment: Environment, gettext: Callable[[str], str],
                         ngettext: Callable[[str, str, int], str]) -> None:
    """Jinja's newstyle ``gettext``, ``ngettext`` and ``_`` in ``environment``'s templates, with
    ``_`` calling ``gettext`` directly. As in Jinja, the translation is a format string
    (``%(name)s`` filled in, ``%%`` for a percent sign), and in an autoescaped template it is
    markup whose variables are escaped."""
    environment.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]

    formatted: dict[str, Markup] = {}  # translation -> itself formatted with no variables

    @pass_eval_context
    def translate(eval_context: EvalContext, message: str, /, **variables: Any) -> str:
        text = gettext(message)
        if not eval_context.autoescape:
            return text % variables
        if variables:
            return Markup(text) % variables
        markup = formatted.get(text)
        if markup is None:
            markup = Markup(text) % variables
            if len(formatted) < TRANSLATIONS_REMEMBERED:
                formatted[text] = markup
        return markup

    environment.globals["_"] = translate
