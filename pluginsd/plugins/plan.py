"""Plan a run: which plugins, at which commit, in which order.

Everything DevStack learns by running shell is learnt here by running the
same shell: localrc is sourced (so ``enable_plugin`` lines may use
variables) and every plugin's ``settings`` is sourced in bash with
``define_plugin``, ``plugin_requires`` and ``enable_service`` recording what
they are given. Nothing is read with a regex.
"""

import dataclasses
import os
import re
import tempfile

from pluginsd import exception
from pluginsd.plugins import fetch
from pluginsd.plugins import order
from pluginsd.runner import shell

BOOL_VARS = ('RECLONE', 'ERROR_ON_CLONE', 'OFFLINE')
TRUE_WORDS = ('1', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE')


@dataclasses.dataclass
class Plugin:
    name: str
    url: str
    ref: str
    sha: str = ''
    path: str = ''  # checkout the daemon planned from
    services: list = dataclasses.field(default_factory=list)
    define_name: str = ''
    # The git bundle nodes check the commit out from (plugins.bundles)
    bundle: str = ''  # sha256 of its bytes
    bundle_size: int = 0
    bundle_ref: str = ''

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Plan:
    plugins: list  # Plugin, in run order
    declared: list  # names in enable_plugin order
    reasons: list  # why a plugin moved

    def to_dict(self):
        return {
            'plugins': [p.to_dict() for p in self.plugins],
            'declared': self.declared,
            'reasons': self.reasons,
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            [Plugin(**p) for p in data['plugins']],
            data['declared'],
            data['reasons'],
        )


def _is_true(value):
    return value in TRUE_WORDS


class LocalrcError(exception.LocalConfError):
    pass


def read_localrc(session, localconf, workdir):
    """Source the padded localrc in ``session``; map errors to local.conf."""
    path = os.path.join(workdir, 'localrc')
    with open(path, 'w') as f:
        f.write(localconf.localrc)
    try:
        session.run(shell.command('__pluginsd_source_localrc', path))
    except shell.ShellExited as e:
        line, message = _localrc_error(
            os.path.join(workdir, 'session.log'), path
        )
        raise exception.LocalConfError(
            path=localconf.path,
            line=line,
            reason=message
            or f'sourcing localrc failed with status {e.returncode}',
        ) from e
    return path


def _session_output(out):
    try:
        with open(out, errors='replace') as f:
            return f.read().splitlines()
    except OSError:
        return []


# `die` prints "[ERROR] file:line message";
# bash prints "file: line N: message".
_DIE = re.compile(r'^\[ERROR\] (.*?):(\d+) (.*)$')
_BASH = re.compile(r'^(.*?): line (\d+): (.*)$')


def error_message(lines):
    """(file, line, message) of the last error in a session's output."""
    for line in reversed(lines):
        match = _DIE.match(line) or _BASH.match(line)
        if match:
            return match.group(1), int(match.group(2)), match.group(3)
    lines = [ln for ln in lines if ln.strip() and not ln.startswith('+')]
    return None, None, lines[-1] if lines else ''


def _localrc_error(out, localrc_path):
    path, line, message = error_message(_session_output(out))
    if path == localrc_path:
        return line, message
    where = f' ({path}:{line})' if path else ''
    return '?', message + where


def make_plan(
    localconf,
    workdir,
    bash='/bin/bash',
    checkout_root=None,
    default_dest='/opt/stack',
    fetch_plugins=True,
    pins=None,
    bundles=None,
):
    """Fetch and order the plugins that ``localconf`` enables.

    With ``checkout_root`` the daemon clones into ``checkout_root/<name>``
    (its cache); without it, into ``$DEST/<name>`` as DevStack does.
    ``pins`` ({(url, ref): (sha, checkout)}, shared by the plans of one
    run) makes every role of a run use the commit the first one pinned.
    With ``bundles`` (a BundleStore) every pinned commit gets its bundle.
    """
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'session.log'), 'w') as out:
        # Settings are sourced once more on every node; plugins that must
        # tell the two apart can test PLUGINSD_PLANNING.
        session = shell.BashSession(
            bash,
            env={'PLUGINSD_DEST': default_dest, 'PLUGINSD_PLANNING': 'True'},
            output=out,
        )
    try:
        plan = _plan(
            session, localconf, workdir, checkout_root, fetch_plugins, pins
        )
    finally:
        session.close()
    if bundles is not None:
        for plugin in plan.plugins:
            if plugin.sha:
                entry = bundles.build(plugin, plugin.path)
                plugin.bundle, plugin.bundle_size, plugin.bundle_ref = (
                    entry['digest'],
                    entry['size'],
                    entry['ref'],
                )
    return plan


def _plan(session, localconf, workdir, checkout_root, fetch_plugins, pins):
    read_localrc(session, localconf, workdir)
    values = {}
    for _, name, value in session.run(
        shell.command('__pluginsd_print_vars', *BOOL_VARS, 'GIT_DEPTH')
    ):
        values[name] = value
    options = fetch.FetchOptions(
        reclone=_is_true(values['RECLONE']),
        error_on_clone=_is_true(values['ERROR_ON_CLONE']),
        offline=_is_true(values['OFFLINE']),
        git_depth=int(values['GIT_DEPTH'] or 0),
    )

    plugins = []
    dir_events = session.run('__pluginsd_plugin_dirs')
    for _, name, gitdir, url, ref, enabled_at in dir_events:
        plugin = Plugin(name=name, url=url, ref=ref or 'master')
        _check_source(plugin, localconf, enabled_at, workdir)
        plugin.path = (
            os.path.join(checkout_root, name) if checkout_root else gitdir
        )
        pinned = pins.get((url, plugin.ref)) if pins is not None else None
        if pinned:
            plugin.sha, plugin.path = pinned
        elif fetch_plugins:
            plugin.sha = fetch.fetch(plugin, plugin.path, options)
        else:
            # unstack and clean never fetch (contract 5.6): what is there
            # is used, a missing plugin is skipped.
            plugin.sha = fetch.head(plugin.path) or ''
        if pins is not None and plugin.sha:
            pins.setdefault((url, plugin.ref), (plugin.sha, plugin.path))
        plugins.append(plugin)
    if not plugins:
        return Plan([], [], [])

    # Point GITDIR at what was fetched, then read every settings file.
    for plugin in plugins:
        session.run(f'GITDIR[{plugin.name}]={shell.command(plugin.path)}')
    requirements, aliases = [], {}
    by_name = {p.name: p for p in plugins}

    def on_event(fields):
        kind = fields[0]
        if kind == 'define':
            _, owner, defined, _path, _line = fields
            by_name[owner].define_name = defined
            aliases[defined] = owner
        elif kind == 'requires':
            _, owner, _declared_by, needed, path, line = fields
            requirements.append(
                order.Requirement(owner, needed, path, int(line))
            )
        elif kind == 'enables' and fields[1] in by_name:
            by_name[fields[1]].services.extend(fields[2:])

    current = {}
    try:
        session.run('__pluginsd_record_metadata; set -e')
        session.run(
            '__pluginsd_override_defaults',
            on_event=lambda f: current.update(step=f),
        )
        session.run(
            '__pluginsd_load_settings',
            on_event=lambda f: (current.update(step=f), on_event(f)),
        )
    except shell.ShellExited as e:
        step = current.get('step', ['step', 'settings', '?'])
        plugin = by_name.get(step[2])
        path = (
            os.path.join(plugin.path, 'devstack', step[1])
            if plugin
            else step[2]
        )
        _, _, message = error_message(
            _session_output(os.path.join(workdir, 'session.log'))
        )
        raise exception.SettingsError(
            reason=f'plugin {step[2]}: sourcing {path} failed with status '
            f'{e.returncode}: {message}'
        ) from e

    names, reasons = order.order(
        [p.name for p in plugins], requirements, aliases
    )
    return Plan(
        [by_name[n] for n in names], [p.name for p in plugins], reasons
    )


def _check_source(plugin, localconf, enabled_at, workdir):
    """Refuse a URL or ref git could misread, naming the local.conf line.

    Never falls back to another ref: the run stops here, before any git.
    """
    try:
        fetch.check_plugin(plugin)
    except exception.FetchError as e:
        file, _, line = enabled_at.rpartition(':')
        if file != os.path.join(workdir, 'localrc'):
            line = '?'  # enabled from a file localrc sourced
        raise exception.LocalConfError(
            path=localconf.path,
            line=line or '?',
            reason=f'enable_plugin {plugin.name}: {e.kwargs["reason"]}',
        ) from None


def scratch_dir(base):
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix='plan-', dir=base)
