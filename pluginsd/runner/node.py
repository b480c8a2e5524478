"""Run the phases of one run on one node, as stack.sh would.

A ``stack`` run keeps one bash session from its first phase to its last,
so everything plugins define stays visible to later plugins and phases.
``unstack`` and ``clean`` each get a fresh session, as unstack.sh and
clean.sh are separate processes. Before the first phase a session sources
localrc, every ``override-defaults`` and every ``settings``; after a daemon
retry or an agent restart the same set-up is replayed in a new session.
"""

import collections
import dataclasses
import logging
import os
import threading
import time

from pluginsd import exception
from pluginsd import git
from pluginsd import localconf as localconf_mod
from pluginsd import process
from pluginsd import results
from pluginsd.plugins import fetch
from pluginsd.runner import devstack
from pluginsd.runner import packages
from pluginsd.runner import shell

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class NodeSettings:
    host: str
    dest: str
    log_dir: str
    state_dir: str
    bash: str = '/bin/bash'
    installer: str = 'noop'
    extras_dir: str = ''
    xtrace: bool = True
    tail_lines: int = 20
    allowed_sources: tuple = ()
    # A DevStack checkout whose own library the sessions source; '' for
    # pluginsd's standalone library (pluginsd.runner.devstack)
    devstack_dir: str = ''
    # (plugin, check, timeout) -> path of the plugin's bundle (its
    # ``bundle_ref`` is what to fetch there); None: fetch from the URL
    source_provider: object = None


class _Plugin:
    def __init__(self, data):
        self.name = data['name']
        self.url = data['url']
        self.ref = data['ref']
        self.sha = data['sha']
        self.bundle = data.get('bundle', '')
        self.bundle_size = data.get('bundle_size', 0)
        self.bundle_ref = data.get('bundle_ref', '')


class _Session:
    """One bash session and what is known about it."""

    def __init__(self, bash_session, output, mode):
        self.bash = bash_session
        self.output = output
        self.mode = mode
        self.last_phase = None
        self.dirs = {}

    def close(self):
        self.bash.close()
        self.output.close()


def tail(path, lines):
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - 16384, 0))
            data = f.read().decode(errors='replace')
    except OSError:
        return ''
    return '\n'.join(data.splitlines()[-lines:])


CANCELS_KEPT = 256  # cancelled attempts a node remembers


class NodeRunner:
    def __init__(self, settings):
        self.settings = settings
        self._sessions = {}
        # (run_id, attempt) cancelled here, newest last; bounded: a cancel
        # matters only while its attempt may still run.
        self._cancelled = collections.OrderedDict()
        self._stopping = False
        self._running = 0  # phases being run right now
        self._running_runs = {}  # run_id -> attempt of the running phase
        self._scopes = {}  # run_id -> process.Scope of the running phase
        self._lock = threading.Lock()
        self.distro, self.os_package = packages.os_facts()
        self._sessions_dir = os.path.join(settings.state_dir, 'sessions')
        self._kill_leftovers()

    def _kill_leftovers(self):
        """Kill bash sessions a previous agent left running (it was killed)."""
        if not os.path.isdir(self._sessions_dir):
            os.makedirs(self._sessions_dir, exist_ok=True)
            return
        for name in os.listdir(self._sessions_dir):
            try:
                with open(f'/proc/{name}/cmdline', 'rb') as f:
                    ours = b'driver.sh' in f.read()
            except OSError:
                ours = False
            if ours:
                LOG.warning(
                    '%s: killing leftover plugin session %s',
                    self.settings.host,
                    name,
                )
                try:
                    os.killpg(int(name), 9)
                except OSError:
                    pass
            os.unlink(os.path.join(self._sessions_dir, name))

    def session_started(self, pid):
        open(os.path.join(self._sessions_dir, str(pid)), 'w').close()

    def session_ended(self, pid):
        try:
            os.unlink(os.path.join(self._sessions_dir, str(pid)))
        except FileNotFoundError:
            pass

    # -- public API ---------------------------------------------------------

    def run_phase(self, event, report):
        """Run one phase of ``event`` here; ``report`` gets every result.

        Returns the node's whole-phase result (plugin ``''``), also reported.
        """
        run_id, mode, phase = event['run_id'], event['mode'], event['phase']
        started = time.time()
        summary = results.Result(
            run_id,
            self.settings.host,
            results.NODE,
            mode,
            phase,
            results.OK,
            0,
            started,
        )
        phase_dir = os.path.join(self.settings.log_dir, run_id, phase)
        os.makedirs(phase_dir, exist_ok=True)
        deadline = time.monotonic() + event.get('deadline', 3600)
        runner = _PhaseRun(self, event, phase_dir, deadline, report)
        # git, the package installer and bundle downloads stop at the
        # deadline or on cancel, as bash does.
        scope = process.Scope(deadline)
        with self._lock:
            self._running += 1
            self._running_runs[run_id] = event.get('attempt', 1)
            self._scopes[run_id] = scope
            if (run_id, event.get('attempt', 1)) in self._cancelled:
                scope.kill('cancelled')
        try:
            with scope:
                runner.execute()
        except _PhaseFailed as e:
            summary.status, summary.exit_code = e.status, e.exit_code
            summary.message = e.message
            summary.tail = e.tail
        except exception.PluginsdException as e:
            summary.status, summary.exit_code = results.FAILED, None
            summary.message = f'node {self.settings.host}: {e}'
        except Exception as e:
            # Whatever went wrong, the daemon hears of it: a phase with no
            # result would leave the run waiting for its deadline.
            LOG.exception(
                '%s: %s %s of run %s failed',
                self.settings.host,
                mode,
                phase,
                run_id,
            )
            summary.status, summary.exit_code = results.FAILED, None
            summary.message = (
                f'node {self.settings.host}: {mode} {phase} '
                f'failed: {type(e).__name__}: {exception.without_traceback(e)}'
            )
        finally:
            with self._lock:
                self._running -= 1
                self._running_runs.pop(run_id, None)
                self._scopes.pop(run_id, None)
        summary.ended_at = time.time()
        summary.log_path = phase_dir
        if (
            summary.status != results.OK
            or mode != 'stack'
            or phase == results.STACK_PHASES[-1]
        ):
            self.close_run(run_id)
        report(summary)
        return summary

    def cancel(self, run_id, attempt):
        with self._lock:
            self._mark_cancelled(run_id, attempt)
            session = self._sessions.get(run_id)
            scope = self._scopes.get(run_id)
        if scope:
            scope.kill('cancelled')
        if session:
            session.bash.kill()

    def _mark_cancelled(self, run_id, attempt):
        """With self._lock held."""
        self._cancelled[(run_id, attempt)] = True
        self._cancelled.move_to_end((run_id, attempt))
        while len(self._cancelled) > CANCELS_KEPT:
            self._cancelled.popitem(last=False)

    def is_cancelled(self, run_id, attempt):
        return (run_id, attempt) in self._cancelled

    def end_run(self, run_id):
        """The daemon is done with a run: drop its idle shell. A phase still
        running here (its node outlived the run) is killed; the thread that
        runs it closes the shell.
        """
        with self._lock:
            running = run_id in self._running_runs
            if running:
                # Said as cancelled: end_run may overtake the cancel_run
                # sent just before it, and the kill is not the plugin's
                # failure.
                self._mark_cancelled(run_id, self._running_runs[run_id])
            session = self._sessions.get(run_id)
            scope = self._scopes.get(run_id)
        if scope:
            scope.kill('cancelled')
        if running and session:
            session.bash.kill()
        elif not running:
            self.close_run(run_id)

    def close_run(self, run_id):
        with self._lock:
            session = self._sessions.pop(run_id, None)
        if session:
            session.close()
            self.session_ended(session.bash.proc.pid)

    def close(self):
        for run_id in list(self._sessions):
            self.close_run(run_id)

    def kill_all(self):
        self._stopping = True
        with self._lock:
            sessions = list(self._sessions.values())
            scopes = list(self._scopes.values())
        for scope in scopes:
            scope.kill('stopping')
        for session in sessions:
            session.bash.kill()

    def busy(self):
        """Whether a phase is running (an idle stack session is not busy)."""
        return self._running > 0


class _PhaseFailed(Exception):
    def __init__(self, status, exit_code, message, tail=''):
        super().__init__(message)
        self.status, self.exit_code = status, exit_code
        self.message, self.tail = message, tail


class _PhaseRun:
    """The work of one phase event on this node."""

    def __init__(self, node, event, phase_dir, deadline, report):
        self.node = node
        self.s = node.settings
        self.event = event
        self.run_id, self.mode, self.phase = (
            event['run_id'],
            event['mode'],
            event['phase'],
        )
        self.plugins = [_Plugin(p) for p in event['plugins']]
        self.localconf = localconf_mod.LocalConf.from_dict(event['localconf'])
        self.phase_dir = phase_dir
        self.deadline = deadline
        self.report = report
        self.run_dir = os.path.dirname(phase_dir)
        self.current = None  # [plugin, started_at] while one runs
        self.step = 'start'

    def execute(self):
        try:
            self._execute()
        except process.Stopped as e:
            raise self._stopped(e) from None

    def _stopped(self, error):
        status, why = {
            'deadline': (results.TIMEOUT, 'the phase deadline passed'),
            'cancelled': (results.CANCELLED, 'the run was cancelled'),
        }.get(
            error.reason,
            (results.KILLED, 'the agent stopped'),
        )
        log = os.path.join(self.phase_dir, 'packages.log')
        return _PhaseFailed(
            status,
            None,
            f'node {self.s.host}: {self.step} in {self.mode} {self.phase}: '
            f'{why}; "{error.command}" and its process group were killed',
            tail(log, self.s.tail_lines) if 'packages' in self.step else '',
        )

    def _execute(self):
        self._check_sources()
        session = self._session()
        try:
            if self.phase == 'pre-install':
                self._install_packages(session)
            if self.phase == 'extra':
                self._merge(session, 'extra')
            # stack phases are `stack <phase>`; clean's first step is a
            # plain `unstack`, as clean.sh runs unstack.sh first.
            args = (
                ('stack', self.phase)
                if self.mode == 'stack'
                else (self.phase, '')
            )
            self._run(
                session,
                shell.command('__pluginsd_run_phase', *args, self.phase_dir),
                on_event=self._on_event,
            )
            if self.phase in ('post-config', 'test-config'):
                self._merge(session, self.phase)
            if self.phase == 'extra':
                self._merge(session, 'post-extra')
            session.last_phase = self.phase
        except (shell.ShellExited, shell.ShellTimeout) as e:
            self._fail(e, session)

    # -- set-up ------------------------------------------------------------

    def _check_sources(self):
        allowed = self.s.allowed_sources
        if allowed is None:
            return
        for plugin in self.plugins:
            try:
                admitted = git.source_allowed(plugin.url, allowed)
                reason = 'is not in [agent] allowed_sources'
            except git.GitInputError as e:
                admitted, reason = None, f'is refused: {e}'
            if not admitted:
                raise _PhaseFailed(
                    results.FAILED,
                    None,
                    f'node {self.s.host} refuses plugin {plugin.name}: source '
                    f'{exception.redact_url(plugin.url)} {reason}',
                )

    def _session(self):
        with self.node._lock:
            session = self.node._sessions.get(self.run_id)
        phases = results.MODE_PHASES[self.mode]
        index = phases.index(self.phase)
        if (
            session
            and session.bash.alive
            and session.mode == self.mode
            and session.last_phase == (phases[index - 1] if index else None)
        ):
            return session
        if session:
            self.node.close_run(self.run_id)
        return self._new_session()

    def _new_session(self):
        output = open(
            os.path.join(self.run_dir, f'session-{self.phase}.log'), 'ab'
        )
        env = {
            'PLUGINSD_DEST': self.s.dest,
            'PLUGINSD_EXTRAS_DIR': self.s.extras_dir or '',
            'PLUGINSD_PACKAGE_INSTALLER': getattr(
                self.s.installer, 'name', 'noop'
            ),
            'PLUGINSD_HOST': self.s.host,
            **devstack.session_env(self.s.devstack_dir),
        }
        bash = shell.BashSession(
            self.s.bash, env=env, output=output, cwd=self.run_dir
        )
        session = _Session(bash, output, self.mode)
        self.node.session_started(bash.proc.pid)
        with self.node._lock:
            self.node._sessions[self.run_id] = session
        try:
            self._setup(session)
        except (shell.ShellExited, shell.ShellTimeout) as e:
            self._fail(e, session)
        return session

    def _setup(self, session):
        """stack.sh's start, in two round trips to bash (they add up on a
        busy node): localrc and the plugin directories, then - once the
        checkouts are in place - override-defaults and settings.
        """
        stack = self.mode == 'stack'
        top = self.s.devstack_dir
        localrc = os.path.join(self.run_dir, 'localrc')
        with open(localrc, 'w') as f:
            f.write(self.localconf.localrc)
        view_localrc = top and devstack.prepare_view(
            top, self.run_dir, self.localconf.localrc, self.s.dest
        )
        stackenv = os.path.join(self.s.state_dir, 'stackenv')
        first = []
        if self.s.xtrace and stack:
            first.append('set -o xtrace')
        first.append("__pluginsd_evt step 'sourcing localrc'")
        first.append(devstack.source_localrc(localrc, top, view_localrc))
        if stack:
            first.append('set -o errexit')  # as stack.sh, before fetching
        else:
            first.append(shell.command('__pluginsd_load_stackenv', stackenv))
        if top:
            first.append(devstack.early_libs(top))
        first.append('__pluginsd_plugin_dirs')
        events = self._run(session, '; '.join(first), on_event=self._on_step)
        self._checkouts(session, {e[1]: e[2] for e in events if e[0] == 'dir'})
        second = [
            shell.command(
                '__pluginsd_set_order', *[p.name for p in self.plugins]
            ),
            '__pluginsd_override_defaults',
            *([devstack.service_libs(top)] if top else []),
            '__pluginsd_load_settings',
            '__pluginsd_load_hypervisor',
        ]
        if stack:
            os.makedirs(self.s.state_dir, exist_ok=True)
            second += [
                '__pluginsd_evt step verify_disabled_services',
                'verify_disabled_services',
                shell.command('__pluginsd_save_stackenv', stackenv),
            ]
        elif self.s.xtrace:
            second.append('set -o xtrace')  # unstack.sh: after settings
        self._run(session, '; '.join(second), on_event=self._on_step)
        self.step = 'running'

    def _checkouts(self, session, dirs):
        self.step = 'checking out plugins'
        wanted = [p.name for p in self.plugins]
        if sorted(dirs) != sorted(wanted):
            raise _PhaseFailed(
                results.FAILED,
                None,
                f'node {self.s.host}: localrc enables {sorted(dirs)} but the '
                f'run pinned {sorted(wanted)}',
            )
        for plugin in self.plugins:
            target = dirs[plugin.name]
            session.dirs[plugin.name] = target
            if self.mode != 'stack':
                continue  # unstack and clean never fetch (contract 5.6)
            if fetch.head(target) == plugin.sha:
                continue
            self.step = f'checking out plugin {plugin.name}'
            if self.s.source_provider:
                path = self.s.source_provider(
                    plugin, self._check_deadline, self._time_left
                )
                fetch.ensure_checkout(
                    plugin,
                    target,
                    plugin.sha,
                    path,
                    plugin.bundle_ref,
                    shallow=True,
                )
            else:
                fetch.ensure_checkout(
                    plugin, target, plugin.sha, plugin.url, plugin.sha
                )

    def _install_packages(self, session):
        # stack.sh: every plugin's package list, then the missing packages
        # of every plugin's bindep.txt, all before `stack pre-install`.
        wanted = []
        for plugin in self.plugins:
            wanted += packages.plugin_packages(
                session.dirs[plugin.name],
                plugin.name,
                self.node.distro,
                self.node.os_package,
            )
        for plugin in self.plugins:
            try:
                found = packages.bindep_packages(
                    session.dirs[plugin.name], plugin.name
                )
            except exception.PluginsdException as e:
                raise _PhaseFailed(
                    results.FAILED, None, f'node {self.s.host}: {e}'
                ) from e
            wanted += [p for p in found if p not in wanted]
        if not wanted:
            return
        self.step = 'installing plugin packages'
        log_path = os.path.join(self.phase_dir, 'packages.log')
        with open(log_path, 'ab') as log:
            status = self.s.installer.install(wanted, log)
        if status:
            raise _PhaseFailed(
                results.FAILED,
                status,
                f'node {self.s.host}: installing plugin packages failed '
                f'(status {status}): {" ".join(wanted)}',
                tail(log_path, self.s.tail_lines),
            )
        self.step = 'running'

    def _merge(self, session, group):
        by_file = collections.OrderedDict()
        for section in self.localconf.merge_sections(group):
            [(_, path)] = self._run(
                session, shell.command('__pluginsd_expand', section.file_spec)
            )
            if not path:
                LOG.warning(
                    '%s:%s: [[%s|%s]] expands to nothing; the rest of '
                    'the %s group is skipped, as DevStack does',
                    self.localconf.path,
                    section.line,
                    group,
                    section.file_spec,
                    group,
                )
                break
            options = by_file.setdefault(path, collections.OrderedDict())
            for opt in section.options:
                options.setdefault((opt.section, opt.key), []).append(
                    opt.value
                )
        for path, options in by_file.items():
            for (section, key), values in options.items():
                self._run(
                    session,
                    shell.command(
                        '__pluginsd_merge_option', path, section, key, *values
                    ),
                )

    def _time_left(self):
        return self.deadline - time.monotonic()

    def _check_deadline(self):
        """Between steps that run no bash: stop at the deadline or cancel."""
        if self.node.is_cancelled(self.run_id, self.event.get('attempt', 1)):
            raise _PhaseFailed(
                results.CANCELLED,
                None,
                f'node {self.s.host}: run cancelled while {self.step} in '
                f'{self.mode} {self.phase}',
            )
        if self._time_left() <= 0:
            raise _PhaseFailed(
                results.TIMEOUT,
                None,
                f'node {self.s.host}: the phase deadline passed while '
                f'{self.step} in {self.mode} {self.phase}',
            )

    # -- running -----------------------------------------------------------

    def _run(self, session, line, on_event=None):
        return session.bash.run(
            line, on_event=on_event, deadline=self.deadline
        )

    def _on_step(self, fields):
        if fields[0] == 'step':
            self.step = ' of '.join(fields[1:])

    def _on_event(self, fields):
        kind = fields[0]
        if kind == 'start':
            self.current = [fields[1], float(fields[2])]
        elif kind == 'end':
            plugin, code, ended = fields[1], int(fields[2]), float(fields[3])
            status = results.OK if code == 0 else results.FAILED
            self._report_plugin(plugin, status, code, ended)
            self.current = None
        elif kind == 'skip':
            now = float(fields[2])
            self.report(
                self._result(
                    fields[1],
                    results.SKIPPED,
                    None,
                    now,
                    now,
                    'no devstack/plugin.sh',
                )
            )

    def _result(self, plugin, status, code, started, ended, message=''):
        log_path = os.path.join(self.phase_dir, f'{plugin}.log')
        return results.Result(
            self.run_id,
            self.s.host,
            plugin,
            self.mode,
            self.phase,
            status,
            code,
            started,
            ended,
            log_path if status != results.SKIPPED else '',
            tail(log_path, self.s.tail_lines)
            if status != results.SKIPPED
            else '',
            message,
        )

    def _report_plugin(self, plugin, status, code, ended, message=''):
        started = self.current[1] if self.current else ended
        result = self._result(plugin, status, code, started, ended, message)
        self.report(result)
        return result

    def _fail(self, error, session):
        cancelled = self.node.is_cancelled(
            self.run_id, self.event.get('attempt', 1)
        )
        if isinstance(error, shell.ShellTimeout):
            status, code = results.TIMEOUT, None
            why = 'deadline passed; its process group was killed'
        elif self.node._stopping:
            status, code = results.KILLED, error.returncode
            why = (
                'the agent stopped and killed its process group after '
                'graceful_shutdown_timeout'
            )
        elif cancelled:
            status, code = results.CANCELLED, error.returncode
            why = 'run cancelled; its process group was killed'
        else:
            status, code = results.FAILED, error.returncode
            why = f'exit status {code}'
            if code == 0:
                # `exit 0` in a plugin ends stack.sh too; nothing after it
                # runs.
                status, why = (
                    results.FAILED,
                    'the plugin called exit; bash ended',
                )
        self.node.close_run(self.run_id)
        if self.current:
            plugin = self.current[0]
            result = self._report_plugin(
                plugin, status, code, time.time(), why
            )
            raise _PhaseFailed(
                status,
                code,
                f'node {self.s.host}: plugin {plugin} failed in {self.mode} '
                f'{self.phase}: {why}',
                result.tail,
            )
        session_log = session.output.name
        raise _PhaseFailed(
            status,
            code,
            f'node {self.s.host}: {self.step} failed in {self.mode} '
            f'{self.phase}: {why}',
            tail(session_log, self.s.tail_lines),
        )
