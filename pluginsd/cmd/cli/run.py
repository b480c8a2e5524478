"""``pluginsctl run ...``: list, show and manage runs."""

import time

from cliff import command
from cliff import lister

from pluginsd import exception
from pluginsd.cmd.cli import common
from pluginsd.cmd.cli import progress

RUN_HELP = 'run id (a unique prefix will do)'


def add_run_argument(parser):
    parser.add_argument('run', metavar='RUN', help=RUN_HELP)


class RunList(common.DaemonCommand, lister.Lister):
    """List runs, oldest first."""

    reads_only = True

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--state',
            action='append',
            choices=common.RUN_STATES,
            default=[],
            help='only runs in this state (may be repeated)',
        )
        parser.add_argument(
            '--limit',
            type=int,
            metavar='N',
            help='only the N most recent runs',
        )
        parser.add_argument(
            '--long',
            action='store_true',
            help='more columns: attempt, last update, local.conf',
        )
        return parser

    def take_action(self, args):
        if args.limit is not None and args.limit < 1:
            raise common.UsageError('--limit: expected a positive number')
        runs = self.call('list_runs')
        if args.state:
            runs = [r for r in runs if r['state'] in args.state]
        if args.limit is not None:
            runs = runs[-args.limit :]
        columns = ['ID', 'Mode', 'State', 'Created', 'Error']
        if args.long:
            columns[4:4] = ['Attempt', 'Updated', 'Local Conf']
        rows = []
        for run in runs:
            row = {
                'ID': run['id'],
                'Mode': run['mode'],
                'State': run['state'],
                'Created': common.iso_time(run['created_at']),
                'Attempt': run['attempt'],
                'Updated': common.iso_time(run['updated_at']),
                'Local Conf': run['local_conf_path'],
                # The whole error is in `run show`.
                'Error': run['error']
                if common.machine(args)
                else common.first_line(run['error']),
            }
            rows.append([row[c] for c in columns])
        return columns, rows


class RunShow(common.DaemonCommand, lister.Lister):
    """Show a run as a node x plugin x phase table (and whom it waits on).

    In machine formats (-f json, yaml, ...), one record per result. With
    --commits, what ran where: per role, each plugin's URL, ref and the
    commit the run pinned.
    """

    reads_only = True

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_run_argument(parser)
        parser.add_argument(
            '--commits',
            action='store_true',
            help="list per role each plugin's URL, ref and pinned commit "
            'instead of the results',
        )
        return parser

    def take_action(self, args):
        view = self.call('get_run', args.run)
        if args.commits:
            return commit_rows(view, full=common.machine(args))
        print(
            f'run {view["id"]}: {view["mode"]} {view["state"]}',
            file=self.app.stderr,
        )
        if view['waiting_on']:
            print(
                f'waiting on: {", ".join(view["waiting_on"])} '
                f'({view.get("phase")})',
                file=self.app.stderr,
            )
        if view['error']:
            print(f'error: {view["error"]}', file=self.app.stderr)
        if common.machine(args):
            return common.result_rows(view)
        return common.matrix(view)


def commit_rows(view, full):
    """Role, plugin, URL, ref and commit of every plugin the run pinned."""
    rows = [
        [
            view['id'],
            c['role'],
            c['plugin'],
            c['url'],
            c['ref'],
            c['commit'] if full else c['commit'][:12],
        ]
        for c in view.get('commits', [])
    ]
    return ['Run', 'Role', 'Plugin', 'URL', 'Ref', 'Commit'], rows


class RunStatus(common.DaemonCommand, common.ShowOne):
    """Show the state of a run."""

    reads_only = True

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_run_argument(parser)
        return parser

    def take_action(self, args):
        view = self.call('get_run', args.run)
        fields = {
            'id': view['id'],
            'mode': view['mode'],
            'state': view['state'],
            'attempt': view['attempt'],
            'created_at': common.iso_time(view['created_at']),
            'updated_at': common.iso_time(view['updated_at']),
            'phase': view.get('phase'),
            # Words, not Python lists: stages as "a,b c", hosts comma-joined.
            'stages': ' '.join(','.join(s) for s in view['stages']),
            'waiting_on': ','.join(view['waiting_on']),
            'error': view['error'],
        }
        return list(fields), list(fields.values())


class RunLogs(common.DaemonCommand, command.Command):
    """Print the full log of one plugin phase on one node."""

    reads_only = True
    # The daemon gives the node 10 s to answer: it must be able to say so.
    answer_timeout = 20

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_run_argument(parser)
        parser.add_argument(
            '--node', required=True, metavar='HOST', help='the node'
        )
        parser.add_argument(
            '--plugin',
            required=True,
            metavar='PLUGIN',
            help="the plugin ('packages' for package installation, '' for "
            'the session log)',
        )
        parser.add_argument(
            '--phase', required=True, metavar='PHASE', help='the phase'
        )
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
                return common.EXIT_OK
            if not chunk['data']:
                time.sleep(0.5)


class RunRetry(progress.FollowingLister):
    """Resume a failed or cancelled run from the phase that failed.

    Only the new attempt's results are shown as they come; the table at the
    end is the whole run.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_run_argument(parser)
        parser.add_argument(
            '--failed-nodes-only',
            action='store_true',
            help='re-run the failed phase only on the nodes that failed it',
        )
        self.add_no_wait(parser)
        return parser

    def take_action(self, args):
        run = self.call('retry_run', args.run, args.failed_nodes_only)
        if self.app.options.verbose_level:
            print(
                f'run {run["id"]}: retrying (attempt {run["attempt"]})',
                file=self.app.stderr,
            )
        return self.follow_to_table(args, run['id'])


class RunCancel(common.DaemonCommand, command.Command):
    """Cancel a run: its running plugins are killed."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_run_argument(parser)
        return parser

    def take_action(self, args):
        run = self.call('cancel_run', args.run)
        print(f'run {run["id"]}: cancel requested', file=self.app.stderr)
        return common.EXIT_OK


class RunDelete(common.DaemonCommand, command.Command):
    """Delete finished runs and their results from the database."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'runs',
            metavar='RUN',
            nargs='+',
            help=RUN_HELP + ' (several may be given)',
        )
        return parser

    def take_action(self, args):
        failed = 0
        for run_id in args.runs:
            try:
                run = self.call('delete_run', run_id)
            except exception.PluginsdException as e:
                # The others are still deleted; the exit status says
                # that one was not.
                print(f'pluginsctl: {e}', file=self.app.stderr)
                failed += 1
                continue
            print(f'run {run["id"]}: deleted', file=self.app.stderr)
        return common.EXIT_FAILED if failed else common.EXIT_OK


class RunReport(common.DaemonCommand, command.Command):
    """Write a self-contained HTML picture of a run (timeline, failures)."""

    reads_only = True

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_run_argument(parser)
        parser.add_argument(
            '--output',
            '-o',
            required=True,
            metavar='FILE',
            help='the HTML file to write',
        )
        return parser

    def take_action(self, args):
        from pluginsd import report

        view = self.call('get_run', args.run)
        with open(args.output, 'w', encoding='utf-8') as f:
            f.write(report.render(view))
        print(
            f'run {view["id"]}: report written to {args.output}',
            file=self.app.stderr,
        )
        return common.EXIT_OK
