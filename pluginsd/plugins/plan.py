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
import subprocess
import tempfile
import time

from pluginsd import exception
from pluginsd import git
from pluginsd import process
from pluginsd.plugins import fetch
from pluginsd.plugins import order
from pluginsd.runner import devstack
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


def _is_true(value):
    return value in TRUE_WORDS


class LocalrcError(exception.LocalConfError):
    pass


def syntax_error(path, bash='/bin/bash'):
    """bash's own syntax check of ``path`` (``bash -n``): its message, or ''.

    Sourcing a file with a syntax error stops at the error and returns 2,
    which nothing notices before errexit is on (localrc), so check first.
    """
    proc = subprocess.run(
        [bash, '--noprofile', '--norc', '-n', path],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode == 0:
        return None
    found = [_BASH.match(ln) for ln in proc.stderr.splitlines()]
    found = [m for m in found if m]
    if not found:
        return '?', proc.stderr.strip() or f'bash -n: status {proc.returncode}'
    # bash may add a second line quoting the offending text.
    return found[0].group(2), ' '.join(m.group(3) for m in found)


def read_localrc(
    session, localconf, workdir, bash='/bin/bash', devstack_dir='', dest=''
):
    """Source the padded localrc in ``session``; map errors to local.conf."""
    path = os.path.join(workdir, 'localrc')
    with open(path, 'w') as f:
        f.write(localconf.localrc)
    error = syntax_error(path, bash)
    if error:
        line, message = error
        raise exception.LocalConfError(
            path=localconf.localrc_source,
            line=line,
            reason=f"bash: {message}",
        )
    view = devstack_dir and devstack.prepare_view(
        devstack_dir, workdir, localconf.localrc, dest
    )
    try:
        session.run(devstack.source_localrc(path, devstack_dir, view))
    except shell.ShellExited as e:
        line, message = _localrc_error(
            os.path.join(workdir, 'session.log'), (path, view)
        )
        raise exception.LocalConfError(
            path=localconf.localrc_source,
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


def _localrc_error(out, localrc_paths):
    path, line, message = error_message(_session_output(out))
    if path in localrc_paths:
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
    devstack_dir='',
    mode='stack',
    dry_run=False,
    git_timeout=None,
    scope=None,
):
    """Fetch and order the plugins that ``localconf`` enables.

    With ``checkout_root`` the daemon clones into ``checkout_root/<name>``
    (its cache); without it, into ``$DEST/<name>`` as DevStack does.
    ``pins`` ({(url, ref): (sha, checkout)}, shared by the plans of one
    run) makes every role of a run use the commit the first one pinned.
    With ``bundles`` (a BundleStore) every pinned commit gets its bundle.
    With ``devstack_dir`` settings are read with DevStack's own library, as
    the nodes read them. ``dry_run``: nothing a later run uses changes
    (``pluginsctl plan``); what would be cloned or updated is cloned into
    ``workdir`` instead. ``git_timeout``: seconds the plan (git, and bash
    sourcing localrc and settings) may take in all, killed after that.
    ``scope`` (a process.Scope): kill() it to stop the planning (cancel).
    """
    if scope is None:
        deadline = time.monotonic() + git_timeout if git_timeout else None
        scope = process.Scope(deadline)
    try:
        with scope:
            return _make_plan(
                localconf,
                workdir,
                bash,
                checkout_root,
                default_dest,
                fetch_plugins,
                pins,
                bundles,
                devstack_dir,
                mode,
                dry_run,
            )
    except Exception as e:
        if scope.killed:  # whatever that did to git or bash
            raise exception.PluginsdException(
                f'planning stopped: {scope.killed}'
            ) from None
        if isinstance(e, shell.ShellTimeout):
            raise exception.LocalConfError(
                path=localconf.localrc_source,
                line='?',
                reason=f'sourcing it was still running after {git_timeout} '
                's ([daemon] phase_timeout) and was killed',
            ) from None
        if not isinstance(e, _TooLong):
            raise
        plugin, stopped = e.args
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=plugin.ref,
            reason=f'"{stopped.command}" was still running after '
            f'{git_timeout} s ([daemon] phase_timeout) and was killed',
        ) from None


class _TooLong(Exception):
    """(plugin, process.Stopped): a git command of the plan hung."""


def _bounded(plugin, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except process.Stopped as e:
        raise _TooLong(plugin, e) from None


def _make_plan(
    localconf,
    workdir,
    bash,
    checkout_root,
    default_dest,
    fetch_plugins,
    pins,
    bundles,
    devstack_dir,
    mode,
    dry_run,
):
    os.makedirs(workdir, exist_ok=True)
    scope = process.current()
    with open(os.path.join(workdir, 'session.log'), 'w') as out:
        # Settings are sourced once more on every node; plugins that must
        # tell the two apart can test PLUGINSD_PLANNING.
        session = shell.BashSession(
            bash,
            deadline=scope.deadline if scope else None,
            env={
                'PLUGINSD_DEST': default_dest,
                'PLUGINSD_PLANNING': 'True',
                **devstack.session_env(devstack_dir),
            },
            output=out,
        )
    if scope:
        scope.adopt(session.proc)  # a cancel kills it with git
    reader = _Planner(
        session, localconf, workdir, bash, devstack_dir, default_dest, mode
    )
    try:
        plan = reader.plan(
            checkout_root,
            fetch_plugins,
            pins,
            os.path.join(workdir, 'checkouts') if dry_run else None,
        )
    finally:
        session.close()
    if bundles is not None:
        for plugin in plan.plugins:
            if plugin.sha:
                entry = _bounded(plugin, bundles.build, plugin, plugin.path)
                plugin.bundle, plugin.bundle_size, plugin.bundle_ref = (
                    entry['digest'],
                    entry['size'],
                    entry['ref'],
                )
    return plan


def read_settings(plugins, workdir, bash='/bin/bash'):
    """Source the settings of ``plugins`` (checked out at ``.path``), in
    order, as planning does but without errexit; return (requirements,
    aliases) and fill in each plugin's ``define_name`` and ``services``.
    """
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'session.log'), 'w') as out:
        session = shell.BashSession(
            bash, env={'PLUGINSD_PLANNING': 'True'}, output=out, cwd=workdir
        )
    planner = _Planner(
        session, None, workdir, bash, '', '/opt/stack', 'unstack'
    )
    try:
        session.run(
            shell.command('__pluginsd_set_order', *[p.name for p in plugins])
        )
        planner._check_syntax(plugins)
        return planner._read_settings(plugins)
    finally:
        session.close()


class _Planner:
    def __init__(
        self, session, localconf, workdir, bash, devstack_dir, dest, mode
    ):
        self.session = session
        self.localconf = localconf
        self.workdir = workdir
        self.bash = bash
        self.devstack_dir = devstack_dir
        self.dest = dest
        self.mode = mode

    def plan(self, checkout_root, fetch_plugins, pins, scratch=None):
        session = self.session
        read_localrc(
            session,
            self.localconf,
            self.workdir,
            self.bash,
            self.devstack_dir,
            self.dest,
        )
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
            _check_source(plugin, self.localconf, enabled_at, self.workdir)
            plugin.path = (
                os.path.join(checkout_root, name) if checkout_root else gitdir
            )
            pinned = pins.get((url, plugin.ref)) if pins is not None else None
            if pinned:
                plugin.sha, plugin.path = pinned
            elif fetch_plugins and scratch:
                plugin.sha, plugin.path = _bounded(
                    plugin,
                    fetch.fetch,
                    plugin,
                    plugin.path,
                    options,
                    dry_run_dir=os.path.join(scratch, name),
                )
            elif fetch_plugins and checkout_root:
                plugin.sha = _bounded(
                    plugin, fetch.fetch, plugin, plugin.path, options
                )
            elif fetch_plugins:
                with git.public_files():  # $DEST, as DevStack's git_clone
                    plugin.sha = _bounded(
                        plugin, fetch.fetch, plugin, plugin.path, options
                    )
            else:
                # unstack and clean never fetch (contract 5.6): what is
                # there is used, a missing plugin is skipped.
                plugin.sha = fetch.head(plugin.path) or ''
            if pins is not None and plugin.sha:
                pins.setdefault((url, plugin.ref), (plugin.sha, plugin.path))
            plugins.append(plugin)
        if not plugins:
            return Plan([], [], [])
        self._check_syntax(plugins)
        requirements, aliases = self._read_settings(plugins)
        names, reasons = order.order(
            [p.name for p in plugins], requirements, aliases
        )
        by_name = {p.name: p for p in plugins}
        return Plan(
            [by_name[n] for n in names], [p.name for p in plugins], reasons
        )

    def _check_syntax(self, plugins):
        for plugin in plugins:
            for name in ('override-defaults', 'settings'):
                path = os.path.join(plugin.path, 'devstack', name)
                error = os.path.isfile(path) and syntax_error(path, self.bash)
                if error:
                    line, message = error
                    raise exception.SettingsError(
                        reason=f'plugin {plugin.name}: {path}:{line}: '
                        f'bash: {message}'
                    )

    def _read_settings(self, plugins):
        """Source every settings file, recording what it declares."""
        session = self.session
        # Point GITDIR at what was fetched, then read every settings file.
        for plugin in plugins:
            session.run(f'GITDIR[{plugin.name}]={shell.command(plugin.path)}')
        requirements, aliases = [], {}
        by_name = {p.name: p for p in plugins}
        step, failure = ['step', 'settings', '?'], []

        def on_event(fields):
            nonlocal step
            kind = fields[0]
            if kind == 'step':
                step = fields
            elif kind == 'err':
                failure[:] = fields[1:]
            elif kind == 'define':
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

        # stack reads settings under errexit; unstack and clean do not
        # (contract 7.4), so a failing settings file stops only stack.
        errexit = '; set -o errexit' if self.mode == 'stack' else ''
        try:
            session.run('__pluginsd_record_metadata' + errexit)
            session.run('__pluginsd_override_defaults', on_event=on_event)
            if self.devstack_dir:
                session.run(
                    devstack.service_libs(self.devstack_dir),
                    on_event=on_event,
                )
            session.run('__pluginsd_load_settings', on_event=on_event)
        except shell.ShellExited as e:
            raise exception.SettingsError(
                reason=self._settings_failure(step, failure, e, by_name)
            ) from e
        except shell.ShellTimeout as e:
            who, source = self._step_source(step, by_name)
            raise exception.SettingsError(
                reason=f'{who}sourcing {source} was still running at the '
                'planning deadline ([daemon] phase_timeout) and was killed'
            ) from e
        return requirements, aliases

    def _step_source(self, step, by_name):
        """(who, file) of the settings step the session was in."""
        what, owner = step[1], step[2] if len(step) > 2 else '?'
        plugin = by_name.get(owner)
        if plugin:
            return f'plugin {owner}: ', os.path.join(
                plugin.path, 'devstack', what
            )
        return '', what  # a DevStack lib/ file, say

    def _settings_failure(self, step, failure, error, by_name):
        """Name the file and line that failed, and quote bash."""
        who, source = self._step_source(step, by_name)
        lines = _session_output(os.path.join(self.workdir, 'session.log'))
        if failure and failure[0] != shell.DRIVER:
            path, line, status, command = failure
            said = [
                m.group(3)
                for m in (_BASH.match(ln) for ln in lines)
                if m and m.group(1) == path and m.group(2) == line
            ]
            quote = f': {said[-1]}' if said else ''
            return (
                f'{who}{path}:{line}: `{command}` failed with status '
                f'{status}{quote}'
            )
        return (
            f'{who}sourcing {source} returned status {error.returncode}: '
            'its last command returned non-zero, which ends stack under '
            'errexit as it ends stack.sh'
        )


def _check_source(plugin, localconf, enabled_at, workdir):
    """Refuse a URL or ref git could misread, naming the local.conf line.

    Never falls back to another ref: the run stops here, before any git.
    """
    try:
        fetch.check_plugin(plugin)
    except exception.FetchError as e:
        file, _, line = enabled_at.rpartition(':')
        if file not in (
            os.path.join(workdir, 'localrc'),
            os.path.join(workdir, devstack.VIEW, devstack.LOCALRC),
        ):
            line = '?'  # enabled from a file localrc sourced
        raise exception.LocalConfError(
            path=localconf.localrc_source,
            line=line or '?',
            reason=f'enable_plugin {plugin.name}: {e.kwargs["reason"]}',
        ) from None


def scratch_dir(base):
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix='plan-', dir=base)
