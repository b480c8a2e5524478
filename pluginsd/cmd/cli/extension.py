"""``pluginsctl extension list``: the daemon's extensions."""

from cliff import lister

from pluginsd.cmd.cli import common


class ExtensionList(common.DaemonCommand, lister.Lister):
    """List the daemon's extensions: loaded, or failed and why."""

    reads_only = True

    def take_action(self, args):
        rows = [
            [
                e['name'],
                e['version'],
                e['description'],
                e['state'],
                e['reason']
                if common.machine(args)
                # The last line of a traceback is the reason.
                else (e['reason'].splitlines()[-1] if e['reason'] else ''),
            ]
            for e in self.call('list_extensions')
        ]
        return ['Name', 'Version', 'Description', 'State', 'Reason'], rows
