"""The two libraries a bash session can run plugins with.

*Standalone* (the default): pluginsd's own ``lib/stackrc`` and
``lib/functions`` stand in for DevStack. *devstack_dir* (``[runner]
devstack_dir`` names a DevStack checkout): the session sources DevStack's
own ``functions``, ``lib/stack``, ``stackrc`` (which sources localrc) and
``lib/*`` in stack.sh's order, so plugins built on DevStack's libraries run
unchanged; pluginsd's ``driver.sh`` only adds its plumbing (the
``__pluginsd_*`` functions).

DevStack's stackrc sources localrc from its own directory (``RC_DIR``, the
directory of the stackrc file), as ``.localrc.auto``. To leave the checkout
untouched, each session gets a *view* of it: a directory of symbolic links
to every top-level entry of the checkout plus the session's own
``.localrc.auto``. ``stackrc`` and ``functions`` are sourced through the
view; ``TOP_DIR`` is the checkout itself, so ``$TOP_DIR/lib/...`` paths are
the real files and nothing pluginsd does writes into the checkout.
"""

import os
import shlex
import shutil

from pluginsd import exception

# stack.sh sources these right after errexit is turned on, before fetching.
EARLY_LIBS = ('database', 'rpc_backend', 'host')
# ...and these after override-defaults, before the plugins' settings.
SERVICE_LIBS = (
    'apache',
    'tls',
    'infra',
    'libraries',
    'lvm',
    'horizon',
    'keystone',
    'glance',
    'nova',
    'placement',
    'cinder',
    'swift',
    'neutron',
    'ldap',
    'dstat',
    'atop',
    'tcpdump',
    'etcd3',
    'os-vif',
)
REQUIRED = ('stackrc', 'functions', 'functions-common', 'lib/stack', 'inc')
VIEW = 'devstack'
LOCALRC = '.localrc.auto'


def check_tree(path, option='[runner] devstack_dir'):
    """The absolute path of a usable DevStack checkout, or ConfigError."""
    path = os.path.abspath(path)
    missing = [
        f for f in REQUIRED if not os.path.exists(os.path.join(path, f))
    ]
    if missing:
        raise exception.ConfigError(
            reason=f'{option} = {path} is not a DevStack checkout: '
            f'{", ".join(missing)} missing'
        )
    return path


def configured(conf):
    """``[runner] devstack_dir`` checked, or '' (standalone library)."""
    path = conf.runner.devstack_dir
    return check_tree(path) if path else ''


def prepare_view(devstack_dir, workdir, localrc_text, dest):
    """Make ``workdir/devstack``: the checkout's view with our localrc.

    Returns the path of the view's ``.localrc.auto``. Its first line also
    sets ``DEST`` (and what stackrc derives from it) to the agent's dest,
    so the starting ``DEST`` is the same in both modes; the rest of the
    text keeps its line numbers, so bash's errors name local.conf's lines.
    Line 1 of a padded localrc is the ``[[local|localrc]]`` header (or an
    ignored line), so nothing of the user's is lost by sharing it.
    """
    view = os.path.join(workdir, VIEW)
    if os.path.isdir(view) and not os.path.islink(view):
        shutil.rmtree(view)
    os.makedirs(view)
    for name in os.listdir(devstack_dir):
        if name in (LOCALRC, 'localrc', '.localrc.password', '.stackenv'):
            continue  # the user's own DevStack runs, not ours
        os.symlink(os.path.join(devstack_dir, name), os.path.join(view, name))
    q = shlex.quote
    prefix = (
        f'DEST={q(dest)}; DATA_DIR={q(dest + "/data")}; '
        f'SERVICE_DIR={q(dest + "/status")}; '
        f'SUBUNIT_OUTPUT={q(dest + "/devstack.subunit")}; '
    )
    first, sep, rest = localrc_text.partition('\n')
    path = os.path.join(view, LOCALRC)
    with open(path, 'w') as f:
        f.write(prefix + first + sep + rest)
    return path


def source_localrc(localrc_path, devstack_dir=None, view_localrc=None):
    """The command line that reads localrc as stack.sh does, at top level.

    Top level, not inside a function, so ``declare``/``typeset`` in localrc
    define globals and a stray ``local`` fails as bash makes it fail.
    """
    if not devstack_dir:
        return (
            '__pluginsd_localrc_begin; '
            f'source {shlex.quote(localrc_path)}; '
            '__pluginsd_localrc_end'
        )
    top = shlex.quote(devstack_dir)
    view = shlex.quote(os.path.dirname(view_localrc))
    # stack.sh: TOP_DIR, functions, lib/stack, GetDistro, then stackrc
    # (which sources .localrc.auto), then the -name negations.
    return '; '.join(
        [
            f'TOP_DIR={top}',
            'FILES=$TOP_DIR/files',
            f'source {view}/functions',
            'source "$TOP_DIR/lib/stack"',
            'GetDistro',
            f'source {view}/stackrc',
            'disable_negated_services',
        ]
    )


def source_libs(names):
    """Top-level ``source "$TOP_DIR/lib/<name>"`` commands, one step each."""
    return '; '.join(
        f"__pluginsd_evt step 'sourcing lib/{n}'; source \"$TOP_DIR/lib/{n}\""
        for n in names
    )


def early_libs(devstack_dir):
    return source_libs(EARLY_LIBS) if devstack_dir else ''


def service_libs(devstack_dir):
    return source_libs(SERVICE_LIBS) if devstack_dir else ''


def session_env(devstack_dir):
    return {'PLUGINSD_DEVSTACK_DIR': devstack_dir or ''}
