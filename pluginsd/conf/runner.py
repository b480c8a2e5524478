from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup('runner', title='How plugin.sh phases are run')
OPTS = [
    cfg.StrOpt(
        'bash', default='/bin/bash', help='The bash to run plugins with.'
    ),
    cfg.StrOpt(
        'package_installer',
        default='',
        help='Installer for plugin package lists: apt, dnf, zypper or '
        'noop. Empty: detected from the distribution.',
    ),
    cfg.StrOpt(
        'extras_dir',
        default='',
        help='Directory of extras.d hook scripts (NN-name.sh), run '
        'before the plugins at every phase. Empty: none.',
    ),
    cfg.StrOpt(
        'devstack_dir',
        default='',
        help='A DevStack checkout (e.g. /opt/stack/devstack). Set: plugin '
        'sessions source its own functions, stackrc and lib/* in '
        "stack.sh's order, so plugins built on DevStack's libraries run "
        'unchanged; the daemon plans with it too. Empty: pluginsd\'s '
        'standalone library. The checkout is only read.',
    ),
    cfg.BoolOpt(
        'xtrace',
        default=True,
        help='Trace every command into the plugin logs (set -x), '
        'as stack.sh does.',
    ),
    cfg.IntOpt(
        'output_tail_lines',
        default=20,
        min=1,
        help='Lines of plugin output kept in each result.',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
