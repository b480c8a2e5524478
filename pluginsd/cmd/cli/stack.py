"""The top-level verbs: stack, unstack, clean (start and follow a run) and
plan (what a run would do)."""

import os
import uuid

from cliff import lister

from pluginsd import exception
from pluginsd import objects
from pluginsd import results
from pluginsd.cmd.cli import client
from pluginsd.cmd.cli import common
from pluginsd.cmd.cli import progress


class RunMode(progress.FollowingLister):
    """Run a mode of a local.conf and show the node x plugin x phase table."""

    mode = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'local_conf',
            metavar='LOCAL_CONF',
            help='the local.conf every node gets (unless --role gives its '
            'role another)',
        )
        parser.add_argument(
            '--role',
            action='append',
            default=[],
            metavar='ROLE=LOCAL_CONF',
            help='a different local.conf for nodes of ROLE (may be repeated)',
        )
        parser.add_argument(
            '--node',
            dest='nodes',
            action='extend',
            nargs='+',
            default=[],
            metavar='HOST',
            help='run on these nodes only (each must be up; may be repeated)',
        )
        parser.add_argument(
            '--require-all-nodes',
            action='store_true',
            help='refuse to start if a known node is not up',
        )
        parser.add_argument(
            '--run-id',
            metavar='UUID',
            help='the id of the run (default: a new UUID); asking again '
            'with the same id, after a timeout say, gives that run instead '
            'of starting another',
        )
        self.add_no_wait(parser)
        return parser

    def check_nodes(self, args):
        """Name on stderr the nodes a run leaves out, or refuse to start."""
        known = {n['host']: n for n in self.call('list_nodes')}
        unknown = sorted(set(args.nodes) - set(known))
        if unknown:
            raise exception.PluginsdException(
                f'--node: no node {", ".join(unknown)} (pluginsctl node list)'
            )
        wanted = args.nodes or list(known)
        down = [h for h in sorted(wanted) if known[h]['state'] != 'up']
        if down and (args.require_all_nodes or args.nodes):
            why = '--require-all-nodes' if not args.nodes else '--node'
            raise exception.PluginsdException(
                f'node(s) not up: {", ".join(down)} ({why}); nothing started'
            )
        for host in down:
            silent = known[host].get('silent_for')
            since = (
                f'no heartbeat for {silent:.0f} s'
                if silent is not None
                else 'no heartbeat since the daemon started'
            )
            print(
                f'node {host} is {known[host]["state"]} ({since}): this run '
                'leaves it out',
                file=self.app.stderr,
            )

    def take_action(self, args):
        confs = {'*': common.read_local_conf(self, args.local_conf)}
        for item in args.role:
            role, sep, path = item.partition('=')
            if not sep or not role or not path:
                raise common.UsageError(
                    f'--role {item!r}: expected ROLE=LOCAL_CONF'
                )
            confs[role] = common.read_local_conf(self, path)
        if args.run_id and not objects.is_uuid(args.run_id):
            raise common.UsageError(
                f'--run-id {args.run_id!r}: expected a UUID in its usual '
                'lower-case form, as uuidgen prints'
            )
        self.check_nodes(args)
        # Chosen here, so that a request that timed out can be found (and
        # asked again) under the id it would have.
        run_id = args.run_id or str(uuid.uuid4())
        try:
            run = self.call(
                'start_run',
                self.mode,
                confs,
                os.path.abspath(args.local_conf),
                nodes=args.nodes or None,
                run_id=run_id,
            )
        except client.DaemonTimeout as e:
            raise client.DaemonTimeout(f'{e} Its id: {run_id}.') from None
        if self.app.options.verbose_level:
            print(
                f'run {run["id"]}: {self.mode} of {args.local_conf}',
                file=self.app.stderr,
            )
        return self.follow_to_table(args, run['id'])


class Stack(RunMode):
    """Run `stack` (pre-install, install, post-config, extra, test-config)."""

    mode = 'stack'


class Unstack(RunMode):
    """Run `unstack` on every node."""

    mode = 'unstack'


class Clean(RunMode):
    """Run `clean` on every node (after `unstack`, as clean.sh does)."""

    mode = 'clean'


class Plan(common.DaemonCommand, lister.Lister):
    """Show the plugins in the order they will run, and why they moved."""

    reads_only = True

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'local_conf', metavar='LOCAL_CONF', help='the local.conf to plan'
        )
        parser.add_argument(
            '--mode',
            choices=sorted(results.MODE_PHASES),
            default='stack',
            help='the mode whose phases to list (default: stack)',
        )
        return parser

    def take_action(self, args):
        plan = self.call(
            'plan',
            common.read_local_conf(self, args.local_conf),
            os.path.abspath(args.local_conf),
        )
        for reason in plan['reasons']:
            print(f'moved: {reason}', file=self.app.stderr)
        # The order is the same in every phase: show it once.
        phases = results.MODE_PHASES[args.mode]
        print(f'phases: {", ".join(phases)}', file=self.app.stderr)
        rows = []
        for index, p in enumerate(plan['plugins'], start=1):
            moved = [
                r for r in plan['reasons'] if r.startswith(p['name'] + ' ')
            ]
            rows.append(
                [
                    index,
                    p['name'],
                    p['url'],
                    p['ref'],
                    p['sha'] if common.machine(args) else p['sha'][:12],
                    moved[0] if moved else '',
                ]
            )
        return ['#', 'Plugin', 'URL', 'Ref', 'Commit', 'Moved Because'], rows
