"""The ``:pyname:`` role: a dotted Python name that must exist.

``:pyname:`pluginsd.daemon.runs.RunManager.start_run``` renders as that
name, linked to the API reference where it is documented there. At build
time the name is imported: if the module, class or function is gone, the
build warns (and ``sphinx -W`` fails), so the contributor guide cannot go
on naming a function that was renamed away. ``tests/unit/test_doc_flow.py``
runs the same check without Sphinx.
"""

import importlib

from docutils import nodes
from sphinx import addnodes


def resolve(dotted):
    """Return the object ``dotted`` names; LookupError saying what is gone."""
    parts = dotted.split('.')
    for i in range(len(parts), 0, -1):
        module_name = '.'.join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only "this prefix is not a module" means: try a shorter one.
            if e.name and module_name.startswith(e.name):
                continue
            raise
        for j in range(i, len(parts)):
            try:
                obj = getattr(obj, parts[j])
            except AttributeError:
                raise LookupError(
                    f'{dotted}: {".".join(parts[:j])} has no {parts[j]!r}'
                ) from None
        return obj
    raise LookupError(f'{dotted}: no module {parts[0]!r}')


def pyname_role(
    name, rawtext, text, lineno, inliner, options=None, content=None
):
    target = text.strip()
    messages = []
    try:
        resolve(target)
    except (LookupError, ImportError) as e:
        messages.append(
            inliner.reporter.warning(
                f'pyname: {e} (rename it here too)', line=lineno
            )
        )
    ref = addnodes.pending_xref(
        rawtext,
        refdomain='py',
        reftype='obj',
        reftarget=target,
        refexplicit=False,
        refwarn=False,
    )
    ref += nodes.literal(rawtext, target, classes=['xref', 'py', 'py-obj'])
    return [ref], messages


def setup(app):
    app.add_role('pyname', pyname_role)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
