"""Order plugins: the declared order, corrected by ``plugin_requires``.

DevStack runs plugins in ``enable_plugin`` order and ignores
``plugin_requires``; the gate's tool that reads it sorts by name and gets
chains wrong. pluginsd keeps the declared order and only pulls a plugin's
dependencies forward, just before the first plugin that needs them (a
stable depth-first topological sort), recording why each one moved.
"""

import dataclasses
import itertools

from pluginsd import exception


@dataclasses.dataclass
class Requirement:
    plugin: str  # the plugin whose settings declared it
    requires: str  # name of the plugin it needs
    path: str  # settings file
    line: int

    def where(self):
        return f'{self.path}:{self.line}'


def order(declared, requirements, aliases=None):
    """Return (ordered names, list of reasons for each move).

    ``declared`` is the enable_plugin order; ``requirements`` a list of
    :class:`Requirement`; ``aliases`` maps a ``define_plugin`` name to the
    enable_plugin name it belongs to, so either may be required.
    """
    aliases = dict(aliases or {})
    known = set(declared)
    needs = {name: [] for name in declared}
    for req in requirements:
        target = (
            req.requires
            if req.requires in known
            else aliases.get(req.requires)
        )
        if target is None:
            raise exception.OrderError(
                reason=f'plugin {req.plugin} requires {req.requires!r}, which '
                f'is not enabled (plugin_requires at {req.where()}); '
                f'enabled plugins: {", ".join(declared)}'
            )
        if target != req.plugin:  # a self-dependency means nothing
            needs[req.plugin].append((target, req))

    result, reasons, state = [], [], {}

    def visit(name, path, chain):
        if state.get(name) == 'done':
            return
        if state.get(name) == 'visiting':
            cycle = path[path.index(name) :] + [name]
            where = '; '.join(
                f'{a} requires {b} at {r.where()}'
                for a, b in itertools.pairwise(cycle)
                for t, r in needs[a]
                if t == b
            )
            raise exception.OrderError(
                reason=f'dependency cycle: {" -> ".join(cycle)} ({where})'
            )
        state[name] = 'visiting'
        for dep, req in needs[name]:
            link = chain + [
                f'{name} requires {dep} (plugin_requires at {req.where()})'
            ]
            root = path[0] if path else name
            if state.get(dep) != 'done' and declared.index(
                dep
            ) > declared.index(root):
                # Pulled ahead of the plugin being placed, maybe through
                # others.
                reasons.append(f'{dep} moved before {root}: {", ".join(link)}')
            visit(dep, path + [name], link)
        state[name] = 'done'
        result.append(name)

    for name in declared:
        visit(name, [], [])
    return result, reasons
