"""``pluginsctl plugin ...`` and ``localconf generate``: the plugin
registry, what a plugin declares, and local.conf files in dependency order.
They run here, without the daemon (pluginsd.registry does the work).
"""

import os

from cliff import command
from cliff import lister
from cliff import show

from pluginsd import registry


def add_registry_option(parser):
    parser.add_argument(
        '--registry',
        metavar='FILE|URL',
        help='a registry in the format of DevStack\'s '
        'doc/source/plugin-registry.rst (default: the one pluginsd ships)',
    )


class PluginList(lister.Lister):
    """List the plugins of a registry and their enable_plugin lines."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_registry_option(parser)
        return parser

    def take_action(self, args):
        rows = [
            [e.name, e.url, e.enable_line]
            for e in registry.read_registry(args.registry)
        ]
        return ['Name', 'URL', 'Enable Line'], rows


class PluginShow(show.ShowOne):
    """Clone a plugin to a scratch directory and show what it declares."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'plugin', metavar='NAME|URL', help='a registry name or a git URL'
        )
        parser.add_argument(
            'ref',
            metavar='REF',
            nargs='?',
            help='branch, tag or commit (default: master, as enable_plugin)',
        )
        add_registry_option(parser)
        return parser

    def take_action(self, args):
        d = registry.show(args.plugin, args.ref, args.registry)
        requires = [f'{r.requires} (settings:{r.line})' for r in d.requires]
        packages = {k: _packages(v) for k, v in d.packages.items()}
        data = {
            'Name': d.name,
            'URL': d.url,
            'Ref': d.ref,
            'Commit': d.sha,
            'Define Plugin': d.define_name,
            'Requires': requires,
            'Enables Services': d.services,
            'Package Files': packages,
            'Phases Handled': d.phases,
        }
        if args.formatter == 'table':  # machine formats keep the lists
            data.update(
                {
                    'Requires': '\n'.join(requires),
                    'Enables Services': ' '.join(d.services),
                    'Package Files': '\n'.join(
                        f'{name}: {" ".join(words)}'
                        for name, words in packages.items()
                    ),
                    'Phases Handled': ' '.join(d.phases),
                }
            )
        return list(data), list(data.values())


def _packages(text):
    """The package words of a list file (comments dropped), for display."""
    words = []
    for line in text.splitlines():
        words += line.split('#', 1)[0].split()
    return words


class LocalconfGenerate(command.Command):
    """Write a local.conf enabling plugins and all they require, in order."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'names', metavar='NAME', nargs='+', help='registry plugin names'
        )
        add_registry_option(parser)
        parser.add_argument(
            '--output',
            '-o',
            metavar='FILE',
            help='write the local.conf there (default: standard output); '
            'an existing file is not overwritten',
        )
        return parser

    def take_action(self, args):
        text, _ = registry.generate(args.names, args.registry)
        if not args.output:
            self.app.stdout.write(text)
            return 0
        try:
            fd = os.open(
                args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
            )
        except FileExistsError:
            raise registry.RegistryError(
                f'{args.output} exists; not overwritten'
            ) from None
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        return 0
