"""``pluginsctl node ...``: the nodes the daemon knows."""

from cliff import command
from cliff import lister

from pluginsd import exception
from pluginsd.cmd.cli import common


def node_record(node, data):
    """A node's facts; ``data`` (machine formats) keeps numbers and times."""
    silent = node.get('silent_for')
    if data:
        heard = round(silent, 1) if silent is not None else None
    else:
        heard = f'{silent:.0f}s ago' if silent is not None else 'never'
    return {
        'Host': node['host'],
        'Roles': node['roles'] if data else ','.join(node['roles']),
        'State': node['state'],
        'Version': node['version'],
        'Activity': node['activity'],
        'Last Heartbeat': common.iso_time(node.get('last_seen'))
        if data
        else heard,
        'Silent For': heard,
        'Registered': common.iso_time(node.get('registered_at')),
        # The library its plugins run with ([runner] devstack_dir).
        'DevStack Dir': node.get('devstack_dir') or '',
    }


class NodeList(common.DaemonCommand, lister.Lister):
    """List nodes and their state (up, or lost after agent_down_time)."""

    reads_only = True

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--long',
            action='store_true',
            help='more columns: registration time, seconds of silence',
        )
        return parser

    def take_action(self, args):
        columns = ['Host', 'Roles', 'State', 'Version', 'Activity']
        columns.append('Last Heartbeat')
        if common.machine(args):
            columns.append('Silent For')
        if args.long:
            columns.append('Registered')
        rows = [
            [node_record(n, common.machine(args))[c] for c in columns]
            for n in self.call('list_nodes')
        ]
        return columns, rows


def find_node(cmd, host):
    for node in cmd.call('list_nodes'):
        if node['host'] == host:
            return node
    raise exception.PluginsdException(f'no node {host}')


class NodeShow(common.DaemonCommand, common.ShowOne):
    """Show one node."""

    reads_only = True

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='HOST', help='the node')
        return parser

    def take_action(self, args):
        record = node_record(find_node(self, args.host), common.machine(args))
        return list(record), list(record.values())


class NodeAccept(common.DaemonCommand, command.Command):
    """Accept a pending node's key: it may then take part in runs."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'hosts', metavar='HOST', nargs='+', help='the node(s) to accept'
        )
        return parser

    def take_action(self, args):
        # Enrollment (node keys) is the daemon's accept_node method.
        from pluginsd.daemon import rpcapi

        if not hasattr(rpcapi.DaemonAPI, 'accept_node'):
            raise exception.PluginsdException(
                'node accept: this pluginsd has no node enrollment (node '
                'keys) yet; every node with the shared key is accepted'
            )
        for host in args.hosts:
            self.call('accept_node', host)
            print(f'node {host}: accepted', file=self.app.stderr)
        return common.EXIT_OK


class NodeDelete(common.DaemonCommand, command.Command):
    """Forget nodes (decommissioned, or never meant to be there)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'hosts', metavar='HOST', nargs='+', help='the node(s) to forget'
        )
        return parser

    def take_action(self, args):
        failed = 0
        for host in args.hosts:
            try:
                node = self.call('delete_node', host)
            except exception.PluginsdException as e:
                print(f'pluginsctl: {e}', file=self.app.stderr)
                failed += 1
                continue
            print(f'node {host}: deleted', file=self.app.stderr)
            if node.get('state') == 'up':
                print(
                    f'node {host} was up: its agent registers it again at '
                    'its next heartbeat unless it is stopped',
                    file=self.app.stderr,
                )
        return common.EXIT_FAILED if failed else common.EXIT_OK
