"""pluginsctl: the command line of pluginsd, built on cliff.

Every command talks to the daemon over its RPC API. With ``--all-in-one``
the daemon and one local agent are started inside this process first, on
the embedded transport, so the same commands work without RabbitMQ.
"""

import logging
import os
import sys
import time

from cliff import app
from cliff import command
from cliff import commandmanager
from cliff import lister
from cliff import show

from pluginsd import exception
from pluginsd import results
from pluginsd import version

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FINAL_STATES = ('completed', 'failed', 'cancelled')


def remote_message(error):
    """The first part of a (possibly remote) error, without its traceback."""
    text = str(error)
    return text.split('\nTraceback (most recent call last)')[0].strip()


def read_file(path):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except OSError as e:
        raise exception.PluginsdException(
            f'{path}: cannot read: {e.strerror}'
        ) from e


def duration(result):
    if result.get('started_at') and result.get('ended_at'):
        return f'{result["ended_at"] - result["started_at"]:.2f}s'
    return ''


def cell(result):
    if result is None:
        return '-'
    status = result['status']
    if status == results.OK:
        return f'ok {duration(result)}'.strip()
    if status == results.SKIPPED:
        return 'skipped'
    code = result['exit_code']
    return f'{status.upper()}' + (f' ({code})' if code is not None else '')


def matrix(view):
    """Rows of node x plugin, one column per phase of the run's mode."""
    phases = results.MODE_PHASES[view['mode']]
    by_key = {(r['node'], r['plugin'], r['phase']): r for r in view['results']}
    rows = []
    hosts = [h for stage in view['stages'] for h in stage]
    for host in hosts:
        role = view['node_roles'].get(host)
        order = list(view['plans'].get(role, {}).get('order', []))
        # Results of things that are not plugins (a hypervisor driver).
        order += sorted(
            {
                r['plugin']
                for r in view['results']
                if r['node'] == host
                and r['plugin']
                and r['plugin'] not in order
            }
        )
        for plugin in order:
            rows.append(
                [host, plugin]
                + [cell(by_key.get((host, plugin, p))) for p in phases]
            )
        node_row = [by_key.get((host, '', p)) for p in phases]
        if any(r and r['status'] != results.OK for r in node_row):
            rows.append([host, '(node)'] + [cell(r) for r in node_row])
    return ['Node', 'Plugin', *phases], rows


class PluginsCtl(app.App):
    def __init__(self):
        manager = commandmanager.CommandManager('pluginsd.ctl')
        for name, cls in COMMANDS.items():
            manager.add_command(name, cls)
        super().__init__(
            description='Drive pluginsd: runs, nodes, logs.',
            version=version.VERSION,
            command_manager=manager,
            deferred_help=True,
        )
        self._client = None
        self._embedded = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(
            description, version, argparse_kwargs
        )
        parser.add_argument(
            '--config-file',
            action='append',
            default=[],
            help='oslo.config file (default: '
            '/etc/pluginsd/pluginsd.conf if it exists)',
        )
        parser.add_argument(
            '--config-dir',
            action='append',
            default=[],
            help='directory of *.conf files',
        )
        parser.add_argument(
            '--all-in-one',
            action='store_true',
            help='start the daemon and a local agent in this '
            'process, on the embedded transport',
        )
        parser.add_argument(
            '--state-dir', help='state_path to use (database, logs, journal)'
        )
        parser.add_argument(
            '--dest', help='default DEST of the local agent ([agent] dest)'
        )
        parser.add_argument(
            '--timeout',
            type=int,
            default=60,
            help='seconds to wait for the daemon to answer '
            '(a daemon that is not running never does)',
        )
        return parser

    def configure_logging(self):
        super().configure_logging()
        # cliff shows INFO by default; a CLI should say only what matters.
        if self.options.verbose_level <= 1 and not self.options.debug:
            for handler in logging.getLogger('').handlers:
                handler.setLevel(logging.WARNING)

    def conf(self):
        from pluginsd import service

        argv = []
        for path in self.options.config_file:
            argv += ['--config-file', path]
        for path in self.options.config_dir:
            argv += ['--config-dir', path]
        conf = service.prepare(argv, 'pluginsctl', setup_logging=False)
        if self.options.state_dir:
            conf.set_override(
                'state_path', os.path.abspath(self.options.state_dir)
            )
        if self.options.dest:
            conf.set_override(
                'dest', os.path.abspath(self.options.dest), group='agent'
            )
        return conf

    def client(self):
        if self._client is None:
            from pluginsd import rpc
            from pluginsd.daemon import rpcapi

            conf = self.conf()
            if self.options.all_in_one:
                from pluginsd import allinone

                self._embedded = allinone.AllInOne(conf)
                self._embedded.start()
                transport = self._embedded.transport
            else:
                transport = rpc.get_transport(conf)
            from pluginsd.rpc import signing

            self._client = rpcapi.DaemonAPI(
                conf,
                transport,
                timeout=self.options.timeout,
                signer=signing.signer_for(conf, f'pluginsctl@{conf.host}'),
            )
        return self._client

    def clean_up(self, cmd, result, err):
        if self._embedded:
            self._embedded.stop()
            self._embedded = None
        if err:
            self.LOG.debug('error', exc_info=err)

    def run_subcommand(self, argv):
        try:
            return super().run_subcommand(argv)
        except Exception as e:  # cliff already logged it in debug mode
            if not self.options.debug:
                print(f'pluginsctl: {remote_message(e)}', file=sys.stderr)
            return EXIT_FAILED

    def handle_error(self, exc):  # cliff hook: show the message, no traceback
        pass


class _Base:
    @property
    def api(self):
        return self.app.client()

    def call(self, method, *args, **kwargs):
        try:
            return getattr(self.api, method)({}, *args, **kwargs)
        except Exception as e:
            raise exception.PluginsdException(remote_message(e)) from None


class RunMode(_Base, lister.Lister):
    """Run a mode of a local.conf and show the node x plugin x phase table."""

    mode = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('local_conf', help='path of the local.conf')
        parser.add_argument(
            '--role',
            action='append',
            default=[],
            metavar='ROLE=LOCAL_CONF',
            help='a different local.conf for nodes of ROLE (may be repeated)',
        )
        parser.add_argument(
            '--no-wait',
            action='store_true',
            help='print the run id and return at once',
        )
        return parser

    def take_action(self, args):
        confs = {'*': read_file(args.local_conf)}
        for item in args.role:
            role, sep, path = item.partition('=')
            if not sep or not role or not path:
                raise exception.PluginsdException(
                    f'--role {item!r}: expected ROLE=LOCAL_CONF'
                )
            confs[role] = read_file(path)
        run = self.call(
            'start_run', self.mode, confs, os.path.abspath(args.local_conf)
        )
        print(
            f'run {run["id"]}: {self.mode} of {args.local_conf}',
            file=sys.stderr,
        )
        if args.no_wait:
            return ['Run'], [[run['id']]]
        view = follow(self, run['id'])
        self.failed = view['state'] != 'completed'
        if view['error']:
            print(
                f'run {view["id"]} {view["state"]}: {view["error"]}',
                file=sys.stderr,
            )
        return matrix(view)

    def run(self, parsed_args):
        self.failed = False
        status = super().run(parsed_args)
        return EXIT_FAILED if self.failed else status


def follow(cmd, run_id, out=sys.stderr):
    """Print results as they arrive until the run ends; return its view."""
    seen, cursor = -1, 0
    while True:
        view = cmd.call('wait_run', run_id, seen, 20, cursor)
        seen, cursor = view['version'], view['last_result_id']
        for r in view['results']:
            what = r['plugin'] or '(node)'
            print(
                f'  {r["node"]:<16} {r["phase"]:<12} {what:<24} {cell(r)}',
                file=out,
            )
        out.flush()
        if view['state'] in FINAL_STATES:
            return cmd.call('get_run', run_id)


class Stack(RunMode):
    """Run `stack` (pre-install, install, post-config, extra, test-config)."""

    mode = 'stack'


class Unstack(RunMode):
    """Run `unstack` on every node."""

    mode = 'unstack'


class Clean(RunMode):
    """Run `clean` on every node (after `unstack`, as clean.sh does)."""

    mode = 'clean'


class Plan(_Base, lister.Lister):
    """Show the phases and plugins in the order they will run, and why."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('local_conf')
        parser.add_argument(
            '--mode', choices=sorted(results.MODE_PHASES), default='stack'
        )
        return parser

    def take_action(self, args):
        plan = self.call(
            'plan',
            read_file(args.local_conf),
            os.path.abspath(args.local_conf),
        )
        for reason in plan['reasons']:
            print(f'moved: {reason}', file=sys.stderr)
        rows = []
        phases = results.MODE_PHASES[args.mode]
        for phase in phases:
            for index, p in enumerate(plan['plugins'], start=1):
                moved = [
                    r for r in plan['reasons'] if r.startswith(p['name'] + ' ')
                ]
                # The order is the same at every phase: explain it once.
                why = moved[0] if moved and phase == phases[0] else ''
                rows.append(
                    [phase, index, p['name'], p['ref'], p['sha'][:12], why]
                )
        return ['Phase', '#', 'Plugin', 'Ref', 'Commit', 'Moved because'], rows


class Runs(_Base, lister.Lister):
    """List runs."""

    def take_action(self, args):
        rows = []
        for run in self.call('list_runs'):
            created = time.strftime(
                '%Y-%m-%d %H:%M:%S', time.localtime(run['created_at'])
            )
            rows.append(
                [
                    run['id'],
                    run['mode'],
                    run['state'],
                    created,
                    run['error'].splitlines()[0] if run['error'] else '',
                ]
            )
        return ['ID', 'Mode', 'State', 'Created', 'Error'], rows


class Show(_Base, lister.Lister):
    """Show a run as a node x phase matrix (and who it waits on)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run', help='run id (a unique prefix will do)')
        return parser

    def take_action(self, args):
        view = self.call('get_run', args.run)
        print(
            f'run {view["id"]}: {view["mode"]} {view["state"]}',
            file=sys.stderr,
        )
        if view['waiting_on']:
            print(
                f'waiting on: {", ".join(view["waiting_on"])} '
                f'({view.get("phase")})',
                file=sys.stderr,
            )
        if view['error']:
            print(f'error: {view["error"]}', file=sys.stderr)
        return matrix(view)


class Status(_Base, show.ShowOne):
    """Show the state of a run."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run')
        return parser

    def take_action(self, args):
        view = self.call('get_run', args.run)
        fields = [
            'id',
            'mode',
            'state',
            'attempt',
            'stages',
            'waiting_on',
            'error',
        ]
        return fields, [view.get(f) for f in fields]


class Nodes(_Base, lister.Lister):
    """List nodes and their state (up, or lost after agent_down_time)."""

    def take_action(self, args):
        rows = [
            [
                n['host'],
                ','.join(n['roles']),
                n['state'],
                n['version'],
                n['activity'],
                f'{n["silent_for"]:.0f}s ago'
                if n['silent_for'] is not None
                else 'never',
            ]
            for n in self.call('list_nodes')
        ]
        return [
            'Host',
            'Roles',
            'State',
            'Version',
            'Activity',
            'Last heartbeat',
        ], rows


class Logs(_Base, command.Command):
    """Print the full log of one plugin phase on one node."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run')
        parser.add_argument('--node', required=True)
        parser.add_argument('--plugin', required=True)
        parser.add_argument('--phase', required=True)
        parser.add_argument(
            '--follow',
            action='store_true',
            help='keep printing while the phase runs',
        )
        return parser

    def take_action(self, args):
        offset = 0
        while True:
            chunk = self.call(
                'get_log', args.run, args.node, args.phase, args.plugin, offset
            )
            if not chunk['exists']:
                raise exception.PluginsdException(
                    f'no log for plugin {args.plugin} {args.phase} on '
                    f'{args.node} ({chunk["path"]})'
                )
            self.app.stdout.write(chunk['data'])
            offset = chunk['offset']
            if not args.follow or (
                not chunk['data'] and not chunk.get('running')
            ):
                return EXIT_OK
            if not chunk['data']:
                time.sleep(0.5)


class Retry(_Base, command.Command):
    """Resume a failed or cancelled run from the phase that failed."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run')
        parser.add_argument(
            '--failed-nodes-only',
            action='store_true',
            help='re-run the failed phase only on the nodes that failed it',
        )
        parser.add_argument('--no-wait', action='store_true')
        return parser

    def take_action(self, args):
        run = self.call('retry_run', args.run, args.failed_nodes_only)
        print(
            f'run {run["id"]}: retrying (attempt {run["attempt"]})',
            file=sys.stderr,
        )
        if args.no_wait:
            return EXIT_OK
        view = follow(self, run['id'])
        if view['error']:
            print(
                f'run {view["id"]} {view["state"]}: {view["error"]}',
                file=sys.stderr,
            )
        return EXIT_OK if view['state'] == 'completed' else EXIT_FAILED


class Cancel(_Base, command.Command):
    """Cancel a run: its running plugins are killed."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run')
        return parser

    def take_action(self, args):
        run = self.call('cancel_run', args.run)
        print(f'run {run["id"]}: cancel requested', file=sys.stderr)
        return EXIT_OK


class Report(_Base, command.Command):
    """Write a self-contained HTML picture of a run (timeline, failures)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run')
        parser.add_argument(
            '--output', '-o', required=True, help='the HTML file to write'
        )
        return parser

    def take_action(self, args):
        from pluginsd import report

        view = self.call('get_run', args.run)
        with open(args.output, 'w', encoding='utf-8') as f:
            f.write(report.render(view))
        print(
            f'run {view["id"]}: report written to {args.output}',
            file=sys.stderr,
        )
        return EXIT_OK


class ExtensionList(_Base, lister.Lister):
    """List the daemon's extensions: loaded, or failed and why."""

    def take_action(self, args):
        rows = [
            [
                e['name'],
                e['version'],
                e['description'],
                e['state'],
                e['reason'].splitlines()[-1] if e['reason'] else '',
            ]
            for e in self.call('list_extensions')
        ]
        return ['Name', 'Version', 'Description', 'State', 'Reason'], rows


class Delete(_Base, command.Command):
    """Delete a finished run and its results from the database."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run')
        return parser

    def take_action(self, args):
        run = self.call('delete_run', args.run)
        print(f'run {run["id"]}: deleted', file=sys.stderr)
        return EXIT_OK


COMMANDS = {
    'stack': Stack,
    'unstack': Unstack,
    'clean': Clean,
    'plan': Plan,
    'runs': Runs,
    'show': Show,
    'status': Status,
    'nodes': Nodes,
    'logs': Logs,
    'retry': Retry,
    'cancel': Cancel,
    'delete': Delete,
    'report': Report,
    'extension list': ExtensionList,
}


def main(argv=None):
    return PluginsCtl().run(sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
