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
import time

from cliff import app
from cliff import commandmanager

from pluginsd import version
from pluginsd.cmd.cli import client
from pluginsd.cmd.cli import common

NAMESPACE = 'pluginsd.cli'
LIBRARY_LOGGERS = (
    'oslo.messaging',
    'oslo.messaging._drivers.impl_rabbit',
    'oslo_messaging',
    'kombu',
    'amqp',
)


def operator_key(conf):
    """The operator's private key that signs every request."""
    from pluginsd import keys

    path = os.path.expanduser(conf.security.operator_key_file)
    if not os.path.exists(path):
        raise client.missing_key(conf.security.operator_key_file)
    return keys.KeyPair.load(path)


class PluginsCtl(app.App):
    def __init__(self, client_factory=None):
        manager = commandmanager.CommandManager(NAMESPACE)
        if not sys.stdout.isatty():
            # Tables in a pipe or a file fit 120 columns (on a terminal,
            # cliff fits them to its width).
            os.environ.setdefault('CLIFF_MAX_TERM_WIDTH', '120')
        super().__init__(
            description='Drive pluginsd: runs, nodes, logs.',
            version=version.VERSION,
            command_manager=manager,
            deferred_help=True,
        )
        self._client = None
        self.exits_after_command = False  # main() of a pluginsctl process
        # Tests hand in a client of a daemon they started themselves.
        self._client_factory = client_factory
        self._conf = None
        self._transport = None
        self._command = None
        self._embedded = None
        self._asked = False  # the daemon was called once already

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
            type=float,
            default=None,
            help='seconds to wait for the broker and the daemon to answer '
            'a request (default: 10; plan, which fetches the plugins: 600)',
        )
        return parser

    def configure_logging(self):
        super().configure_logging()
        # cliff shows INFO by default; a CLI should say only what matters.
        if self.options.verbose_level <= 1 and not self.options.debug:
            for handler in logging.getLogger('').handlers:
                handler.setLevel(logging.WARNING)

    def quiet_libraries(self):
        """The messaging libraries log every retry and redeclaration;
        pluginsctl says what went wrong in one line of its own.
        """
        if self.options.verbose_level > 1 or self.options.debug:
            return
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def conf(self):
        from pluginsd import service

        argv = []
        for path in self.options.config_file:
            argv += ['--config-file', path]
        for path in self.options.config_dir:
            argv += ['--config-dir', path]
        conf = service.prepare(argv, 'pluginsctl', setup_logging=False)
        self.quiet_libraries()  # after prepare(), which sets their levels
        if self.options.state_dir:
            conf.set_override(
                'state_path', os.path.abspath(self.options.state_dir)
            )
        if self.options.dest:
            conf.set_override(
                'dest', os.path.abspath(self.options.dest), group='agent'
            )
        return conf

    def prepare_to_run_command(self, cmd):
        self._command = cmd

    def answer_timeout(self):
        if self.options.timeout is not None:
            return self.options.timeout
        return getattr(self._command, 'answer_timeout', 10)

    def call_daemon(self, method, *args, **kwargs):
        """Call the daemon; every failure is one PluginsdException."""
        timeout = self.answer_timeout()
        deadline = self.first_answer_deadline(timeout, method)
        try:
            read_only = getattr(self._command, 'reads_only', False)
            api = self.client(read_only=read_only)
            return getattr(api, method)({}, *args, **kwargs)
        except Exception as e:
            raise client.explain(e, self._conf, timeout, method) from None
        finally:
            if deadline:
                deadline.met()

    def first_answer_deadline(self, timeout, method):
        """--timeout N: the first answer, start-up and connecting included,
        comes within N s (and a second for the messages) or the process
        leaves saying the daemon did not answer.
        """
        if self._asked or self.options.all_in_one:
            return None  # a later call (a follower), an embedded daemon
        if not self.exits_after_command:
            return None  # a test's process, which goes on
        self._asked = True
        import oslo_messaging

        def message():
            late = oslo_messaging.MessagingTimeout()
            return client.explain(late, self._conf, timeout, method)

        return client.Deadline(
            timeout + 1 - client.process_age(), message, common.EXIT_FAILED
        )

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
            from pluginsd.rpc import signing

            conf = self._conf = self._conf or self.conf()
            if self.options.all_in_one:
                from pluginsd import allinone

                self._embedded = allinone.AllInOne(conf)
                self._embedded.start()
                transport = self._embedded.transport
                key = self._embedded.operator_key
            else:
                transport = self._transport = rpc.get_transport(conf)
                # The wait the user sees counts from the start of the
                # process: the probe and the first answer share it.
                left = self.answer_timeout() - client.process_age()
                deadline = time.monotonic() + max(1.0, left)
                client.probe_broker(conf, deadline)
                # A broker out of reach is said first; then a missing key,
                # at once (a busy broker's greeting is not waited for);
                # then a port that takes connections but never talks.
                key = operator_key(conf)
                client.probe_broker(conf, deadline, greet=True)
            # Every request is signed with the operator's own key; the
            # daemon knows its role (reader or admin).
            signer = signing.Signer(key, 'operator')
            self._client = rpcapi.DaemonAPI(
                conf,
                transport,
                timeout=max(1.0, self.answer_timeout() - client.process_age()),
                signer=signer,
                retry=client.CALL_RETRIES,
            )
        return self._client

    def config_source(self):
        files = self._conf.config_file if self._conf else []
        if files:
            return 'config files: ' + ', '.join(files)
        return 'no config file'

    def clean_up(self, cmd, result, err):
        if self._embedded:
            self._embedded.stop()
            self._embedded = None
        # Its threads would hold the exit of a process that goes on; a
        # pluginsctl process leaves at once (main) and the OS closes its
        # connections, which a loaded machine may take seconds to do here.
        if self._transport and not self.exits_after_command:
            self._transport.cleanup()
            self._transport = None
        if err:
            self.LOG.debug('error', exc_info=err)

    def run_subcommand(self, argv):
        try:
            return super().run_subcommand(argv)
        except Exception as e:  # cliff already logged it in debug mode
            from pluginsd import exception

            if not self.options.debug:
                print(
                    f'pluginsctl: {exception.without_traceback(e)}',
                    file=sys.stderr,
                )
            return common.EXIT_FAILED

    def handle_error(self, exc):  # cliff hook: show the message, no traceback
        pass


def main(argv=None, client_factory=None):
    if argv is not None:  # called in a process that goes on
        return PluginsCtl(client_factory).run(argv)
    app = PluginsCtl()
    app.exits_after_command = True
    code = app.run(sys.argv[1:])
    # The command is done and its output written: leave at once rather
    # than wait for the interpreter to tear the messaging libraries down
    # (up to a second, on top of --timeout).
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


if __name__ == '__main__':
    sys.exit(main())
