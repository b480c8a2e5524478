"""``pluginsctl plugin list|show`` and ``localconf generate``.

Real git repositories of real plugins in a temporary directory, listed in a
registry file in DevStack's plugin-registry.rst format; real bash reads
their settings.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pluginsd import registry
from tests import gitrepos
from tests.functional import aio

CTL = os.path.join(os.path.dirname(sys.executable), 'pluginsctl')


def make_registry(tmp_path, plugins, plain=False):
    """Repos for ``plugins`` ({name: (requires, extra files)}) and a
    registry listing them; returns the registry path.
    """
    rows = []
    for name, (requires, files) in plugins.items():
        content = gitrepos.tracing_plugin(name, requires=requires)
        content.update(files)
        path = gitrepos.make_repo(str(tmp_path / 'repos' / name), content)
        url = f'file://{path}'
        rows.append(
            f'x/{name} {url}' if plain else f'x/{name:<30} `{url} <{url}>`__'
        )
    reg = tmp_path / 'registry.rst'
    border = '=' * 30 + ' ==='
    reg.write_text(
        '.. a registry written by a test\n\n'
        f'{border}\nPlugin Name                    URL\n{border}\n'
        + '\n'.join(rows)
        + f'\n{border}\n'
    )
    return str(reg)


def run_ctl(capsys, *argv):
    """pluginsctl in its own process, as a user runs it."""
    proc = subprocess.run(
        [CTL, *argv], capture_output=True, text=True, timeout=120
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_plugin_list_shipped_and_user_registries(tmp_path, capsys):
    code, out, _ = run_ctl(capsys, 'plugin', 'list', '-f', 'json')
    assert code == 0
    rows = json.loads(out)
    assert {
        'Name': 'neutron',
        'URL': 'https://opendev.org/openstack/neutron',
        'Enable Line': 'enable_plugin neutron '
        'https://opendev.org/openstack/neutron',
    } in rows
    assert len(rows) == 17
    for plain in (False, True):
        reg = make_registry(tmp_path / str(plain), {'alpha': ([], {})}, plain)
        [entry] = registry.read_registry(reg)
        url = f'file://{tmp_path}/{plain}/repos/alpha'
        assert (entry.name, entry.url) == ('alpha', url)
        assert entry.enable_line == f'enable_plugin alpha {url}'
    with pytest.raises(registry.RegistryError) as e:
        registry.read_registry(str(tmp_path / 'none.rst'))
    assert str(e.value).startswith(f'registry {tmp_path}/none.rst: cannot')


def test_plugin_show_reads_what_settings_declare(tmp_path, capsys):
    plugin = textwrap.dedent('''\
        if [[ "$1" == "stack" && "$2" == "install" ]]; then
            :
        elif [[ $1 == unstack ]]; then
            :
        fi
        case $2 in
            post-config|extra) : ;;
        esac
        ''')
    reg = make_registry(
        tmp_path,
        {
            'base': ([], {}),
            'alpha': (
                ['base'],
                {
                    'devstack/settings': 'define_plugin alpha-def\n'
                    'plugin_requires alpha base\n'
                    'if true; then\n    enable_service alpha-api\nfi\n'
                    'enable_service alpha-worker\n',
                    'devstack/plugin.sh': plugin,
                    'devstack/files/debs/alpha': 'libfoo # dist:bookworm\n',
                    'devstack/files/bindep.txt': 'gcc [platform:dpkg]\n',
                },
            ),
        },
    )
    code, out, err = run_ctl(
        capsys, 'plugin', 'show', 'alpha', '--registry', reg, '-f', 'json'
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown['Define Plugin'] == 'alpha-def'
    assert shown['Requires'] == ['base (settings:2)']
    assert shown['Enables Services'] == ['alpha-api', 'alpha-worker']
    assert shown['Package Files'] == {
        'files/debs/alpha': ['libfoo'],
        'files/bindep.txt': ['gcc', '[platform:dpkg]'],
    }
    assert shown['Phases Handled'] == [
        'install',
        'post-config',
        'extra',
        'unstack',
    ]
    assert shown['Commit'] == gitrepos.git(
        str(tmp_path / 'repos' / 'alpha'), 'rev-parse', 'HEAD'
    )
    # A URL works too, with a ref; a bad ref is a one-line error.
    url = f'file://{tmp_path}/repos/base'
    code, out, _ = run_ctl(
        capsys, 'plugin', 'show', url, 'master', '-f', 'json'
    )
    assert (code, json.loads(out)['Name']) == (0, 'base')
    code, _, err = run_ctl(capsys, 'plugin', 'show', url, 'no-such-ref')
    assert code == 1 and 'no-such-ref' in err and 'Traceback' not in err


def enable_lines(text):
    return [ln.split()[1] for ln in text.splitlines() if ln.startswith('en')]


@pytest.mark.parametrize(
    'plugins,names,expected',
    [
        # chain: a -> b -> c, only a named (DevStack's tool gets b, c, a)
        ({'a': (['b'], {}), 'b': (['c'], {}), 'c': ([], {})}, ['a'], 'cba'),
        # diamond: app -> web, db; web, db -> core
        (
            {
                'app': (['web', 'db'], {}),
                'web': (['core'], {}),
                'db': (['core'], {}),
                'core': ([], {}),
            },
            ['app'],
            ['core', 'web', 'db', 'app'],
        ),
        # reversed declaration: the user names them dependents first
        (
            {'a': (['b'], {}), 'b': (['c'], {}), 'c': ([], {})},
            ['a', 'b', 'c'],
            'cba',
        ),
        # no dependencies: the user's order is kept
        ({'z': ([], {}), 'y': ([], {})}, ['z', 'y'], 'zy'),
    ],
    ids=['chain', 'diamond', 'reversed', 'ties'],
)
def test_localconf_generate_orders_by_dependency(
    tmp_path, plugins, names, expected
):
    reg = make_registry(tmp_path, plugins)
    text, ordered = registry.generate(names, reg)
    assert ordered == list(expected)
    assert enable_lines(text) == list(expected)
    for name in set(expected) - set(names):
        assert f'# {name} added: ' in text  # each addition explained


def test_localconf_generate_explains_moves(tmp_path):
    reg = make_registry(
        tmp_path,
        {'a': (['b'], {}), 'b': (['c'], {}), 'c': ([], {})},
    )
    text, _ = registry.generate(['a', 'b', 'c'], reg)
    assert text.splitlines()[6:] == [
        '[[local|localrc]]',
        '# c moved before a: a requires b (plugin_requires at '
        'a/devstack/settings:2), b requires c (plugin_requires at '
        'b/devstack/settings:2)',
        f'enable_plugin c file://{tmp_path}/repos/c',
        '# b moved before a: a requires b (plugin_requires at '
        'a/devstack/settings:2)',
        f'enable_plugin b file://{tmp_path}/repos/b',
        f'enable_plugin a file://{tmp_path}/repos/a',
    ]


def test_localconf_generate_errors(tmp_path, capsys):
    reg = make_registry(
        tmp_path,
        {
            'foo': (['bar'], {}),
            'bar': (['foo'], {}),
            'lone': (['ghost'], {}),
        },
    )
    code, _, err = run_ctl(
        capsys, 'localconf', 'generate', 'foo', '--registry', reg
    )
    assert code == 1
    assert 'dependency cycle: foo -> bar -> foo' in err
    assert 'Traceback' not in err
    with pytest.raises(registry.RegistryError) as e:
        registry.generate(['nope'], reg)
    assert str(e.value) == f'no plugin nope in registry {reg}'
    with pytest.raises(registry.RegistryError) as e:
        registry.generate(['lone'], reg)
    assert str(e.value).startswith(
        "plugin lone requires 'ghost' (plugin_requires at "
        'lone/devstack/settings:2), which is not in registry'
    )


def test_generated_local_conf_stacks(tmp_path, capsys, monkeypatch):
    trace = tmp_path / 'trace'
    monkeypatch.setenv('TEST_TRACE', str(trace))
    reg = make_registry(
        tmp_path,
        {
            'app': (['web', 'db'], {}),
            'web': (['core'], {}),
            'db': (['core'], {}),
            'core': ([], {}),
        },
    )
    out = tmp_path / 'local.conf'
    code, _, err = run_ctl(
        capsys,
        'localconf',
        'generate',
        'app',
        '--registry',
        reg,
        '-o',
        str(out),
    )
    assert code == 0, err
    code, _, err = run_ctl(
        capsys,
        'localconf',
        'generate',
        'app',
        '--registry',
        reg,
        '-o',
        str(out),
    )
    assert code == 1 and 'exists; not overwritten' in err
    harness = aio.AllInOne(tmp_path / 'state')
    try:
        view = harness.run('stack', out.read_text())
    finally:
        harness.close()
    assert view['state'] == 'completed', view['error']
    order = ['core', 'web', 'db', 'app']
    assert view['plans']['*']['order'] == order
    assert view['plans']['*']['reasons'] == []  # nothing left to move
    ran = [t[0] for t in gitrepos.read_trace(trace) if t[2] == 'stack install']
    assert ran == order
