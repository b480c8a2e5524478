"""pluginsctl: the command line of pluginsd, built on cliff.

Every command talks to the daemon over its RPC API. With ``--all-in-one``
the daemon and one local agent are started inside this process first, on
the embedded transport, so the same commands work without RabbitMQ.

The commands are classes in :mod:`pluginsd.cmd.cli`, registered as entry
points in the ``pluginsd.cli`` namespace (setup.cfg).
"""

import logging
import os
import sys

from cliff import app
from cliff import commandmanager

from pluginsd import version
from pluginsd.cmd.cli import common

NAMESPACE = 'pluginsd.cli'


class PluginsCtl(app.App):
    def __init__(self, client_factory=None):
        manager = commandmanager.CommandManager(NAMESPACE)
        super().__init__(
            description='Drive pluginsd: runs, nodes, logs.',
            version=version.VERSION,
            command_manager=manager,
            deferred_help=True,
        )
        self._client = None
        # Tests hand in a client of a daemon they started themselves.
        self._client_factory = client_factory
        self._embedded = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        # No abbreviations: `run list --state` is not `--state-dir`.
        argparse_kwargs = dict(argparse_kwargs or {}, allow_abbrev=False)
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

    def client(self, read_only=False):
        if self._client is None and self._client_factory:
            self._client = self._client_factory(self)
        if self._client is None and read_only and self.options.all_in_one:
            from pluginsd import allinone

            # Straight from the state dir: a stack running there (in
            # another pluginsctl) goes on undisturbed.
            self._client = allinone.Reader(self.conf())
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
                print(
                    f'pluginsctl: {common.remote_message(e)}', file=sys.stderr
                )
            return common.EXIT_FAILED

    def handle_error(self, exc):  # cliff hook: show the message, no traceback
        pass


def main(argv=None, client_factory=None):
    return PluginsCtl(client_factory).run(
        sys.argv[1:] if argv is None else argv
    )


if __name__ == '__main__':
    sys.exit(main())
