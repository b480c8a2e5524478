"""``pluginsctl node ...``: the nodes the daemon knows."""

from cliff import command
from cliff import lister

from pluginsd import exception
from pluginsd.cmd.cli import common


def node_record(node, data):
    """A node's facts.

    ``data`` (common.data_kind): '' for display text; otherwise numbers and
    ISO times, and roles as a list where the format has lists.
    """
    silent = node.get('silent_for')
    if data:
        heard = round(silent, 1) if silent is not None else None
    else:
        heard = f'{silent:.0f}s ago' if silent is not None else 'never'
    pending = [
        f'{k["fingerprint"]} ({k["state"]})'
        for k in node.get('pending_keys', [])
    ]
    return {
        'Host': node['host'],
        # A list where the format has lists (json, yaml); words elsewhere.
        'Roles': node['roles']
        if data == 'structured'
        else ','.join(node['roles']),
        'State': node['state'],
        'Key': node.get('fingerprint', ''),
        'Pending Keys': pending if data else '\n'.join(pending),
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
            [node_record(n, common.data_kind(args))[c] for c in columns]
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
        record = node_record(
            find_node(self, args.host), common.data_kind(args)
        )
        return list(record), list(record.values())


class NodeAccept(common.DaemonCommand, command.Command):
    """Accept a node's pending key: it may then take part in runs.

    A new node's first heartbeat shows it as pending with its key
    fingerprint (``node list``); compare it with ``pluginsd-manage key
    show`` on that node. The same accepts a node's rotated key, which then
    replaces the old one.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'hosts', metavar='HOST', nargs='+', help='the node(s) to accept'
        )
        parser.add_argument(
            '--fingerprint',
            help='the key to accept when a node has several pending',
        )
        return parser

    def take_action(self, args):
        for host in args.hosts:
            done = self.call('accept_node', host, args.fingerprint)
            retired = done['retired']
            print(
                f'node {host}: key {done["fingerprint"]} accepted'
                + (f' (replaces {", ".join(retired)})' if retired else ''),
                file=self.app.stderr,
            )
        return common.EXIT_OK


class NodeReject(common.DaemonCommand, command.Command):
    """Reject a node's pending key, or revoke its accepted key."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'hosts', metavar='HOST', nargs='+', help='the node(s) to reject'
        )
        return parser

    def take_action(self, args):
        for host in args.hosts:
            done = self.call('reject_node', host)
            print(
                f'node {host}: rejected {", ".join(done["rejected"])}',
                file=self.app.stderr,
            )
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
