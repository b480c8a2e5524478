"""The all-in-one mode: the daemon and one agent in this process.

They talk over the embedded in-process transport (``kombu+memory:////``)
through exactly the RPC code a multi-node deployment uses over RabbitMQ,
with SQLite state under ``state_path``. The plugins are cloned straight
into ``$DEST/<name>``, as DevStack does.

One process at a time drives a state dir: :class:`AllInOne` holds an
exclusive lock on ``state_path/all-in-one.lock`` for its whole life, and a
second writer is refused, saying who holds it. Read commands of a second
``pluginsctl --all-in-one`` use :class:`Reader` instead: they read the
database and the logs, and plan as a dry run, starting neither a daemon
nor an agent -- so they never resume, kill or change the running one.

Keys are made under ``state_path/keys`` on first use (daemon, agent and
an admin operator key for the local pluginsctl): the README's one command
stays one command, and the messages are signed and checked as on a
cluster.
"""

import fcntl
import logging
import os
import shutil
import sys
import time

import oslo_messaging as messaging

from pluginsd import exception
from pluginsd import keys
from pluginsd import localconf as localconf_mod
from pluginsd import rpc
from pluginsd.agent import manager as agent_manager
from pluginsd.agent import service as agent_service
from pluginsd.daemon import manager as daemon_manager
from pluginsd.daemon import nodes as daemon_nodes
from pluginsd.daemon import service as daemon_service
from pluginsd.db import api as db_api
from pluginsd.extensions import manager as ext_manager
from pluginsd.plugins import plan as plan_mod
from pluginsd.rpc import memory
from pluginsd.rpc import signing
from pluginsd.runner import devstack

LOCK_NAME = 'all-in-one.lock'
LOCAL_READER = signing.Identity('operator', 'local', 'reader', '', None)


class StateDirBusy(exception.PluginsdException):
    msg_fmt = (
        'state dir %(path)s is in use by another pluginsctl --all-in-one '
        '(pid %(pid)s: %(command)s); wait for it to end. Read commands '
        '(run list, run show, node list, plan) work meanwhile.'
    )


def lock_state_dir(path):
    """Hold the state dir's lock (an open file); refuse if it is held."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    lock = open(os.path.join(path, LOCK_NAME), 'a+')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pid, _, command = lock.read().partition('\n')
        lock.close()
        raise StateDirBusy(
            path=path, pid=pid or '?', command=command.strip() or '?'
        ) from None
    lock.truncate(0)
    lock.write(f'{os.getpid()}\n{" ".join(sys.argv)}\n')
    lock.flush()
    return lock


def local_keys(state_path):
    """(daemon, agent, operator) key pairs of an all-in-one state dir."""
    directory = os.path.join(state_path, 'keys')
    return tuple(
        keys.KeyPair.load_or_create(os.path.join(directory, f'{name}.key'))
        for name in ('daemon', 'agent', 'operator')
    )


class AllInOne:
    def __init__(self, conf):
        # Before anything else: the agent kills the sessions it finds of a
        # previous agent, which are the running one's if it is not dead.
        self._lock = lock_state_dir(conf.state_path)
        try:
            self._setup(conf)
        except BaseException:
            self._lock.close()
            raise

    def _setup(self, conf):
        daemon_key, agent_key, self.operator_key = local_keys(conf.state_path)
        # The local agent's key is accepted and the local operator is an
        # admin: nobody but this process holds them.
        accepted = os.path.join(conf.state_path, 'keys', 'accepted')
        keys.private_write(
            os.path.join(accepted, f'{conf.host}.pub'), agent_key.public
        )
        conf.set_override('accepted_keys_dir', accepted, group='security')
        conf.set_override(
            'operator_keys',
            [
                'admin:'
                + os.path.join(conf.state_path, 'keys', 'operator.key.pub')
            ],
            group='security',
        )
        # kombu warns that memory:// names no host, once per connection.
        logging.getLogger('kombu.connection').setLevel(logging.ERROR)
        memory.install()
        self.transport = rpc.get_transport(conf, url=rpc.EMBEDDED_URL)
        # The in-memory transport has no heartbeats; silence its warning
        # (the driver registered this option; no connection exists yet).
        conf.set_override(
            'heartbeat_timeout_threshold', 0, group='oslo_messaging_rabbit'
        )
        self.daemon = daemon_service.DaemonService(
            conf,
            self.transport,
            checkout_root=None,
            notification_url=rpc.EMBEDDED_URL,
            keypair=daemon_key,
            upgrade_schema=True,
        )
        # The user runs their own local.conf on their own machine: every
        # source it names is allowed.
        self.agent = agent_service.AgentService(
            conf,
            self.transport,
            allow_any_source=True,
            keypair=agent_key,
            daemon_keys=[daemon_key.verify_key],
        )

    def start(self):
        self.daemon.start()
        self.agent.start()

    def stop(self):
        try:
            self.agent.stop(graceful_timeout=0)
            self.daemon.stop()
            self.transport.cleanup()
        finally:
            self._lock.close()


class _StoredLiveness(daemon_nodes.NodeTracker):
    """Node liveness from the heartbeats the database recorded.

    A reader hears no probe of its own: silence counts from the last
    heartbeat stored.
    """

    def __init__(self, conf, db):
        super().__init__(conf, db, events=None)

    def connected(self, now=None):
        return True

    def silent_for(self, node, now=None):
        now = time.time() if now is None else now
        return max(0.0, now - node['last_seen'])


class _NoVersions:
    """Views built outside the daemon have no change counter."""

    bundles = None

    def version(self, run_id):
        return 0


class Reader:
    """The read side of the daemon API, straight from a state dir.

    Same methods and answers as :class:`pluginsd.daemon.rpcapi.DaemonAPI`
    for what it covers; nothing is started and nothing stored is changed.
    """

    def __init__(self, conf):
        self.conf = conf
        url = conf.database.connection
        self.db = None  # nothing has run with this state dir yet
        if not url.startswith('sqlite:///') or os.path.exists(
            url[len('sqlite:///') :]
        ):
            self.db = db_api.Database(url)  # no upgrade: the writer's job

    def _views(self):
        return daemon_manager.DaemonManager(
            self.conf,
            self.db,
            _NoVersions(),
            _StoredLiveness(self.conf, self.db),
            None,
            None,
            None,
        )

    def _call(self, method, *args):
        if self.db is None:
            if method == 'get_run':
                raise exception.RunNotFound(run=args[0])
            return []
        try:
            # The files are read directly: no envelope, a local reader.
            views = self._views()
            call = getattr(daemon_manager.DaemonManager, method).local
            return call(views, {}, LOCAL_READER, *args)
        except messaging.ExpectedException as e:
            raise e.exc_info[1] from None

    def list_runs(self, ctxt):
        return self._call('list_runs')

    def get_run(self, ctxt, run_id):
        return self._call('get_run', run_id)

    def list_nodes(self, ctxt):
        return self._call('list_nodes')

    def list_extensions(self, ctxt):
        return ext_manager.load(self.conf)[1]

    def get_log(self, ctxt, run_id, node, phase, plugin, offset=0):
        run_id = self.get_run(ctxt, run_id)['id']
        if node != self.conf.host:
            raise exception.PluginsdException(
                f'no node {node} in this all-in-one state dir (its node is '
                f'{self.conf.host})'
            )
        return agent_manager.read_log(
            self.conf.agent.log_dir, run_id, phase, plugin, offset
        )

    def plan(self, ctxt, local_conf, local_conf_path):
        """A dry run, as the daemon's: $DEST stays as it is."""
        conf = localconf_mod.from_input(local_conf, local_conf_path)
        workdir = plan_mod.scratch_dir(
            os.path.join(self.conf.state_path, 'plans')
        )
        try:
            return plan_mod.make_plan(
                conf,
                workdir,
                bash=self.conf.runner.bash,
                default_dest=self.conf.agent.dest,
                devstack_dir=devstack.configured(self.conf),
                dry_run=True,
            ).to_dict()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
