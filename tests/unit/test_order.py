"""pluginsd.plugins.order: stable topological order (contract, section 12)."""

import pytest

from pluginsd import exception
from pluginsd.plugins.order import Requirement
from pluginsd.plugins.order import order


def req(plugin, requires, line=2):
    return Requirement(
        plugin, requires, f'/opt/stack/{plugin}/devstack/settings', line
    )


def assert_deps_first(result, requirements, aliases=None):
    aliases = aliases or {}
    for r in requirements:
        dep = r.requires if r.requires in result else aliases[r.requires]
        if dep != r.plugin:
            assert result.index(dep) < result.index(r.plugin), (dep, r.plugin)


class TestOrder:
    def test_no_requirements_keeps_declared_order(self):
        assert order(['zeta', 'alpha', 'mid'], []) == (
            ['zeta', 'alpha', 'mid'],
            [],
        )

    def test_empty(self):
        assert order([], []) == ([], [])

    def test_requirement_already_satisfied_does_not_move(self):
        assert order(['b', 'a'], [req('a', 'b')]) == (['b', 'a'], [])

    def test_dependency_pulled_just_before_first_dependent(self):
        names, reasons = order(['x', 'a', 'b'], [req('a', 'b', 3)])
        assert names == ['x', 'b', 'a']
        assert reasons == [
            'b moved before a: a requires b (plugin_requires at '
            '/opt/stack/a/devstack/settings:3)'
        ]

    def test_first_dependent_wins(self):
        names, reasons = order(
            ['x', 'a', 'y', 'c', 'b'], [req('c', 'b'), req('a', 'b')]
        )
        assert names == ['x', 'b', 'a', 'y', 'c']
        assert reasons == [
            'b moved before a: a requires b (plugin_requires at '
            '/opt/stack/a/devstack/settings:2)'
        ]

    def test_chain(self):
        reqs = [req('a', 'b'), req('b', 'c', 4)]
        names, reasons = order(['a', 'b', 'c'], reqs)
        assert names == ['c', 'b', 'a']
        assert reasons == [
            'b moved before a: a requires b (plugin_requires at '
            '/opt/stack/a/devstack/settings:2)',
            'c moved before a: a requires b (plugin_requires at '
            '/opt/stack/a/devstack/settings:2), b requires c (plugin_requires '
            'at /opt/stack/b/devstack/settings:4)',
        ]

    def test_diamond(self):
        reqs = [
            req('app', 'web', 2),
            req('app', 'db', 3),
            req('web', 'core'),
            req('db', 'core'),
        ]
        names, reasons = order(['app', 'web', 'db', 'core'], reqs)
        assert names == ['core', 'web', 'db', 'app']
        assert_deps_first(names, reqs)
        assert reasons == [
            'web moved before app: app requires web (plugin_requires at '
            '/opt/stack/app/devstack/settings:2)',
            'core moved before app: app requires web (plugin_requires at '
            '/opt/stack/app/devstack/settings:2), web requires core '
            '(plugin_requires at /opt/stack/web/devstack/settings:2)',
            'db moved before app: app requires db (plugin_requires at '
            '/opt/stack/app/devstack/settings:3)',
        ]

    def test_diamond_is_stable_across_calls(self):
        reqs = [
            req('app', 'web'),
            req('app', 'db'),
            req('web', 'core'),
            req('db', 'core'),
        ]
        first = order(['app', 'web', 'db', 'core'], reqs)
        for _ in range(5):
            assert order(['app', 'web', 'db', 'core'], list(reqs)) == first

    def test_unrelated_plugins_keep_their_place(self):
        names, _ = order(['p', 'a', 'q', 'b', 'r'], [req('b', 'a')])
        assert names == ['p', 'a', 'q', 'b', 'r']

    def test_self_dependency_ignored(self):
        assert order(['a', 'b'], [req('a', 'a')]) == (['a', 'b'], [])

    def test_self_dependency_through_alias_ignored(self):
        assert order(
            ['a', 'b'], [req('a', 'a-define')], aliases={'a-define': 'a'}
        ) == (['a', 'b'], [])

    def test_two_cycle(self):
        with pytest.raises(exception.OrderError) as err:
            order(['a', 'b'], [req('a', 'b', 5), req('b', 'a', 7)])
        assert str(err.value) == (
            'dependency cycle: a -> b -> a (a requires b at '
            '/opt/stack/a/devstack/settings:5; b requires a at '
            '/opt/stack/b/devstack/settings:7)'
        )

    def test_three_cycle_behind_an_acyclic_plugin(self):
        with pytest.raises(exception.OrderError) as err:
            order(
                ['x', 'a', 'b', 'c'],
                [req('x', 'a'), req('a', 'b'), req('b', 'c'), req('c', 'a')],
            )
        assert str(err.value) == (
            'dependency cycle: a -> b -> c -> a ('
            'a requires b at /opt/stack/a/devstack/settings:2; '
            'b requires c at /opt/stack/b/devstack/settings:2; '
            'c requires a at /opt/stack/c/devstack/settings:2)'
        )

    def test_unknown_dependency(self):
        with pytest.raises(exception.OrderError) as err:
            order(['a', 'b'], [req('a', 'zz', 9)])
        assert str(err.value) == (
            "plugin a requires 'zz', which is not enabled (plugin_requires "
            "at /opt/stack/a/devstack/settings:9); enabled plugins: a, b"
        )

    def test_alias_resolves(self):
        names, reasons = order(
            ['a', 'neutron-fwaas'],
            [req('a', 'fwaas')],
            aliases={'fwaas': 'neutron-fwaas'},
        )
        assert names == ['neutron-fwaas', 'a']
        assert reasons == [
            'neutron-fwaas moved before a: a requires neutron-fwaas '
            '(plugin_requires at /opt/stack/a/devstack/settings:2)'
        ]

    def test_enable_name_preferred_over_alias(self):
        # 'b' is enabled under that name; an alias 'b' -> 'c' is not used.
        names, _ = order(['a', 'b', 'c'], [req('a', 'b')], aliases={'b': 'c'})
        assert names == ['b', 'a', 'c']

    def test_aliases_not_mutated(self):
        aliases = {'fw': 'fwaas'}
        order(['a', 'fwaas'], [req('a', 'fw')], aliases=aliases)
        assert aliases == {'fw': 'fwaas'}

    def test_every_moved_plugin_has_a_reason(self):
        names, reasons = order(['a', 'b', 'c'], [req('a', 'c'), req('c', 'b')])
        assert names == ['b', 'c', 'a']
        moved = {r.split(' moved before ')[0] for r in reasons}
        assert moved == {'b', 'c'}
