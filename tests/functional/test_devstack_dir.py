"""``[runner] devstack_dir``: plugins run on DevStack's own library.

Uses the DevStack snapshot at ``../shared/devstack`` (from the project
root) or wherever ``PLUGINSD_TEST_DEVSTACK_DIR`` points; skipped when
neither is there. The tree is only read: pluginsd never writes into it.
"""

import os
import textwrap

import pytest

from tests import gitrepos
from tests.functional import aio

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
DEVSTACK = os.environ.get('PLUGINSD_TEST_DEVSTACK_DIR') or os.path.join(
    ROOT, '..', 'shared', 'devstack'
)
STACK = ['pre-install', 'install', 'post-config', 'extra', 'test-config']

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEVSTACK, 'stackrc')),
    reason=f'no DevStack tree at {os.path.abspath(DEVSTACK)}: set '
    'PLUGINSD_TEST_DEVSTACK_DIR to a DevStack checkout',
)

# Like openstack/neutron's plugin.sh: DevStack's ovs_source at the top,
# unconditionally, then DevStack functions at every phase.
PLUGIN = textwrap.dedent('''\
    source $TOP_DIR/lib/neutron_plugins/ovs_source
    seen() {
        local n p v
        n=$(is_neutron_enabled && echo neutron || true)
        p=$(is_placement_enabled && echo placement || true)
        v=$(is_service_enabled nova && echo nova || true)
        echo "ovsuser|seen|$*|$n|$p|$v|$(type -t compile_ovs)|$TOP_DIR|$DEST" \
            >> "$TEST_TRACE"
    }
    if [[ $1 == stack && $2 == install ]]; then
        iniset_rpc_backend ovsuser $OVSUSER_CONF DEFAULT
        seen install
    elif [[ $1 == unstack ]]; then
        seen unstack
    elif [[ $1 == clean ]]; then
        seen clean
    fi
    true
''')

# Like openstack/ironic's common_settings: ask DevStack's stackrc.
SETTINGS = textwrap.dedent('''\
    OVSUSER_CIRROS=$(source $TOP_DIR/stackrc && echo $CIRROS_VERSION)
    OVSUSER_CONF=$DEST/ovsuser.conf
''')


@pytest.fixture
def env(tmp_path, monkeypatch):
    trace = tmp_path / 'trace'
    monkeypatch.setenv('TEST_TRACE', str(trace))
    top = os.path.abspath(DEVSTACK)
    harness = aio.AllInOne(
        tmp_path / 'state',
        **{'runner.devstack_dir': top, 'runner.xtrace': False},
    )
    harness.tmp, harness.top = tmp_path, top
    harness.trace = lambda: gitrepos.read_trace(trace)
    yield harness
    harness.close()


def test_plugin_on_devstack_library_stacks_unstacks_and_cleans(env):
    files = gitrepos.tracing_plugin(
        'ovsuser', settings=SETTINGS, plugin=PLUGIN
    )
    repo = gitrepos.make_repo(str(env.tmp / 'repos' / 'ovsuser'), files)
    conf = textwrap.dedent(f'''\
        [[local|localrc]]
        # DevStack's lib/* look STACK_USER's group up (root in the test).
        STACK_USER=$(id -un)
        RABBIT_PASSWORD=secret
        disable_all_services
        enable_service neutron-api placement-api rabbit
        enable_plugin ovsuser {repo}
        ''')
    # clean runs unstack, then clean, each in a fresh shell, as clean.sh
    # runs unstack.sh: one run covers both (DevStack loads are not cheap).
    for mode in ('stack', 'clean'):
        view = env.run(mode, conf, timeout=180)
        assert view['state'] == 'completed', view['error']
    trace = env.trace()
    phases = [t[2] for t in trace if t[1] == 'plugin.sh']
    assert phases == [f'stack {p}' for p in STACK] + ['unstack', 'clean']
    dest = str(env.tmp / 'state' / 'dest')
    expect = ['neutron', 'placement', '', 'function', env.top, dest]
    seen = [t[2:] for t in trace if t[1] == 'seen']
    assert seen == [
        ['install', *expect],
        ['unstack', *expect],
        ['clean', *expect],
    ]
    # iniset_rpc_backend from DevStack's lib/rpc_backend
    conf_text = open(os.path.join(dest, 'ovsuser.conf')).read()
    assert 'transport_url = rabbit://stackrabbit:secret@' in conf_text
    # the node says which library it runs (its heartbeat; node show)
    [node] = env.api.list_nodes({})
    assert node['devstack_dir'] == env.top
    # the checkout was only read
    assert not os.path.exists(os.path.join(env.top, '.stackenv'))
    assert not os.path.exists(os.path.join(env.top, '.localrc.auto'))
