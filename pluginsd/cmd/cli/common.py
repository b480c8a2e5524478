"""What every pluginsctl command shares: the daemon client, data helpers."""

import datetime

from cliff import show

from pluginsd import exception
from pluginsd import localconf
from pluginsd import results

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
FINAL_STATES = ('completed', 'failed', 'cancelled')
RUN_STATES = ('planning', 'running', *FINAL_STATES)
# Formats a program reads: they get data (numbers, ISO 8601 UTC times,
# one field per fact), never display text.
MACHINE_FORMATS = ('json', 'yaml', 'value', 'csv', 'shell')


class UsageError(Exception):
    """Bad command-line input: exit status 2 and a one-line reason."""


def read_file(path):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except OSError as e:
        raise exception.PluginsdException(
            f'{path}: cannot read: {e.strerror}'
        ) from None


def read_local_conf(cmd, path):
    """A local.conf as the daemon takes it, with a ``localrc`` file beside
    it when there is one (DevStack then reads that file, not the blocks).
    """
    read_file(path)  # its errors say "<path>: cannot read: <why>"
    value = localconf.read_input(path)
    if not isinstance(value, str):
        print(
            f'{path}: using {value["localrc_path"]} instead of its '
            '[[local|localrc]] blocks, as DevStack does',
            file=cmd.app.stderr,
        )
    return value


def iso_time(epoch):
    """An epoch time as ISO 8601 UTC (``2026-12-01T21:40:03Z``), or None."""
    if epoch is None:
        return None
    return (
        datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
        .isoformat(timespec='seconds')
        .replace('+00:00', 'Z')
    )


def seconds(result):
    """How long a result took, in seconds (a number), or None."""
    if result.get('started_at') and result.get('ended_at'):
        return round(result['ended_at'] - result['started_at'], 3)
    return None


def cell(result):
    """One result as a table cell: ``ok 1.23s``, ``FAILED (3)``, ``-``."""
    if result is None:
        return '-'
    status = result['status']
    if status == results.OK:
        took = seconds(result)
        return 'ok' if took is None else f'ok {took:.2f}s'
    if status == results.SKIPPED:
        return 'skipped'
    code = result['exit_code']
    return f'{status.upper()}' + (f' ({code})' if code is not None else '')


def first_line(text):
    return text.splitlines()[0] if text else ''


def hosts_of(view):
    return [h for stage in view['stages'] for h in stage]


def plugin_order(view, host):
    """The plugins of a node in run order, then results of non-plugins
    (a hypervisor driver).
    """
    role = view['node_roles'].get(host)
    order = list(view['plans'].get(role, {}).get('order', []))
    order += sorted(
        {
            r['plugin']
            for r in view['results']
            if r['node'] == host and r['plugin'] and r['plugin'] not in order
        }
    )
    return order


def matrix(view):
    """Rows of node x plugin, one column per phase of the run's mode."""
    phases = results.MODE_PHASES[view['mode']]
    by_key = {(r['node'], r['plugin'], r['phase']): r for r in view['results']}
    rows = []
    for host in hosts_of(view):
        for plugin in plugin_order(view, host):
            rows.append(
                [host, plugin]
                + [cell(by_key.get((host, plugin, p))) for p in phases]
            )
        node_row = [by_key.get((host, '', p)) for p in phases]
        if any(r and r['status'] != results.OK for r in node_row):
            rows.append([host, '(node)'] + [cell(r) for r in node_row])
    return ['Node', 'Plugin', *phases], rows


RESULT_COLUMNS = (
    'Run',
    'Node',
    'Role',
    'Plugin',
    'Mode',
    'Phase',
    'Status',
    'Exit Code',
    'Duration',
    'Attempt',
    'Started',
    'Ended',
)


def result_rows(view):
    """One row per result, every fact a field of its own (machine formats)."""
    rows = []
    for r in view['results']:
        rows.append(
            [
                view['id'],
                r['node'],
                view['node_roles'].get(r['node']),
                r['plugin'],
                r['mode'],
                r['phase'],
                r['status'],
                r['exit_code'],
                seconds(r),
                r['attempt'],
                iso_time(r.get('started_at')),
                iso_time(r.get('ended_at')),
            ]
        )
    return list(RESULT_COLUMNS), rows


def machine(args):
    """Whether the user asked for a format a program reads."""
    return getattr(args, 'formatter', 'table') in MACHINE_FORMATS


def data_kind(args):
    """'' for display text; 'flat' (value, csv, shell: one string per
    field) or 'structured' (json, yaml: lists are lists).
    """
    if not machine(args):
        return ''
    if args.formatter in ('json', 'yaml'):
        return 'structured'
    return 'flat'


class ShowOne(show.ShowOne):
    """One record; its -f shell quotes values so that eval runs nothing."""

    formatter_namespace = 'pluginsd.cli.formatter.show'


class DaemonCommand:
    """Mixin: the daemon client of the app, and calls with plain errors."""

    # A command that only reads: with --all-in-one it reads the state dir
    # and starts no daemon or agent, so it never disturbs a running stack.
    reads_only = False

    def run(self, parsed_args):
        try:
            return super().run(parsed_args)
        except UsageError as e:
            print(f'pluginsctl: {e}', file=self.app.stderr)
            return EXIT_BAD_INPUT

    # Seconds the daemon has to answer a call, unless --timeout says.
    answer_timeout = 10

    def call(self, method, *args, **kwargs):
        return self.app.call_daemon(method, *args, **kwargs)


def deprecated_alias(cls, old, new):
    """A subclass of ``cls`` under its old name: works, warns on stderr,
    hidden from ``help``. Kept one release.
    """

    def run(self, parsed_args):
        print(
            f'pluginsctl: "{old}" is deprecated and will be removed in the '
            f'next release; use "{new}"',
            file=self.app.stderr,
        )
        return cls.run(self, parsed_args)

    return type(
        cls.__name__ + 'Alias',
        (cls,),
        {
            'deprecated': True,
            'run': run,
            '__doc__': f'Deprecated alias of "{new}".',
            '__module__': cls.__module__,
        },
    )
