"""pluginsd-agent's service: RPC server, heartbeats and the result outbox."""

import logging
import os
import random
import threading
import time

from pluginsd import exception
from pluginsd import keys
from pluginsd import rpc
from pluginsd import service
from pluginsd import version
from pluginsd.agent import journal as journal_mod
from pluginsd.agent import manager
from pluginsd.daemon import rpcapi as daemon_rpcapi
from pluginsd.plugins import bundles
from pluginsd.rpc import signing
from pluginsd.runner import devstack
from pluginsd.runner import node as node_mod
from pluginsd.runner import packages

LOG = logging.getLogger(__name__)
OUTBOX_COALESCE = 0.005
OUTBOX_IDLE_WAIT = 60  # every result acknowledged: a look now and then


class AgentService:
    """One node. A process may host several (simulated nodes, benchmarks)."""

    def __init__(
        self,
        conf,
        transport,
        host=None,
        roles=None,
        dest=None,
        state_dir=None,
        allow_any_source=False,
        keypair=None,
        daemon_keys=None,
    ):
        self.conf = conf
        self.host = host or conf.host
        self.roles = list(roles or conf.agent.roles)
        self.state_dir = state_dir or os.path.join(conf.state_path, 'agent')
        log_dir = (
            os.path.join(self.state_dir, 'logs')
            if state_dir
            else conf.agent.log_dir
        )
        # None lets every source through: only the all-in-one mode does that.
        allowed_sources = (
            None if allow_any_source else tuple(conf.agent.allowed_sources)
        )
        self._bundle_cache = bundles.cache_dir(conf)
        distro, os_package = packages.os_facts()
        settings = node_mod.NodeSettings(
            host=self.host,
            dest=dest or conf.agent.dest,
            log_dir=log_dir,
            state_dir=self.state_dir,
            bash=conf.runner.bash,
            installer=packages.get_installer(
                conf.runner.package_installer, os_package
            ),
            extras_dir=conf.runner.extras_dir,
            devstack_dir=devstack.configured(conf),
            xtrace=conf.runner.xtrace,
            tail_lines=conf.runner.output_tail_lines,
            allowed_sources=allowed_sources,
            source_provider=(
                self._bundle_from_daemon
                if conf.agent.plugin_source == 'daemon'
                else None
            ),
        )
        self.runner = node_mod.NodeRunner(settings)
        self.journal = journal_mod.Journal(
            os.path.join(self.state_dir, 'journal.sqlite')
        )
        # This node's own key (made at first start: the daemon shows it as
        # pending until an admin accepts it) and the daemon's, the only
        # key this agent obeys.
        self.keypair = keypair or keys.KeyPair.load_or_create(
            conf.security.key_file
        )
        if daemon_keys is None:
            daemon_keys = [
                keys.load_public(path)
                for path in conf.security.daemon_public_keys
            ]
        if not daemon_keys:
            raise exception.ConfigError(
                reason='[security] daemon_public_keys is empty: an agent '
                'needs the public key of the daemon it obeys'
            )
        self.signer = signing.Signer(self.keypair, f'node:{self.host}')
        self.daemon = daemon_rpcapi.DaemonAPI(
            conf, transport, signer=self.signer
        )
        verifier = signing.Verifier(
            manager.AgentKeyring(daemon_keys),
            signing.ReplayGuard(self.journal, conf.security.max_message_age),
            conf.security.max_message_age,
            where=f'agent {self.host}',
        )
        self._outbox_event = threading.Event()
        self.manager = manager.AgentManager(
            self.host,
            self.roles,
            self.runner,
            self.journal,
            verifier,
            self._outbox_event.set,
            log_dir,
            self._localconf_from_daemon,
        )
        self.server = rpc.get_server(
            transport, rpc.AGENT_TOPIC, self.host, [self.manager]
        )
        self._stop = threading.Event()
        self._threads = []
        self.broker = service.BrokerWatch(conf)

    def start(self):
        # Consumers first: a cast to a queue that does not exist is dropped.
        self.server.start(override_pool_size=self.conf.agent.rpc_workers)
        for target, name in (
            (self._outbox_loop, 'outbox'),
            (self._heartbeat_loop, 'heartbeat'),
            (self._catch_up, 'catch-up'),
        ):
            thread = threading.Thread(
                target=target, daemon=True, name=f'agent-{name}-{self.host}'
            )
            thread.start()
            self._threads.append(thread)
        LOG.info(
            'Agent %s started (roles %s)', self.host, ','.join(self.roles)
        )

    def stop(self, graceful_timeout=None):
        if graceful_timeout is None:
            graceful_timeout = self.conf.agent.graceful_shutdown_timeout
        LOG.info('Agent %s stopping', self.host)
        self.manager.stopping = True  # accept no new phase
        deadline = time.monotonic() + graceful_timeout
        while self.runner.busy() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.runner.busy():
            LOG.warning(
                'Agent %s: killing running plugins after %s s',
                self.host,
                graceful_timeout,
            )
            self.runner.kill_all()
        self.manager.stop()
        # The server keeps running meanwhile: acknowledgements come to it.
        self._flush_outbox(timeout=5)
        self._stop.set()
        for thread in self._threads:  # no heartbeat after "stopped"
            if thread.name.startswith('agent-heartbeat'):
                thread.join(timeout=5)
        self._say_stopped()
        self._outbox_event.set()
        self.server.stop()
        self.server.wait()
        for thread in self._threads:
            # Not catch-up: it may sit in a call the stopped daemon never
            # answers (10 s), and what it gets now would be refused anyway.
            if not thread.name.startswith('agent-catch-up'):
                thread.join(timeout=5)
        self.runner.close()

    def _localconf_from_daemon(self, run_id):
        """This node's part of a run, sealed to this node's key."""
        reply = self.daemon.get_localconf({}, run_id)
        return self.keypair.unseal(reply['sealed'])

    def _bundle_from_daemon(self, plugin, check, timeout):
        """The bundle of a pinned commit, from the daemon, in pieces: no
        access to the plugin's origin needed. ``timeout()``: seconds left
        before the phase deadline.
        """
        if not plugin.bundle:
            raise exception.PluginsdException(
                f'plugin {plugin.name}: the daemon built no bundle of '
                f'{plugin.sha[:12]} (is [agent] plugin_source = daemon '
                'right for this daemon?)'
            )

        def read_chunk(digest, offset):
            return rpc.call_until(
                lambda: self.daemon.get_bundle_chunk(
                    {}, digest, offset, timeout=max(1, min(60, timeout()))
                ),
                timeout,
                f'{self.host}: fetching bundle {digest[:12]} at {offset}',
                stop=check,
            )

        return bundles.download(
            read_chunk,
            plugin.bundle,
            plugin.bundle_size,
            self._bundle_cache,
            check,
        )

    # -- threads -----------------------------------------------------------

    def _send_due(self):
        due = self.journal.due(self.conf.agent.result_resend_interval)
        if not due:
            return 0
        keys = [k for k, _ in due]
        try:
            self.daemon.report_results({}, self.host, [r for _, r in due])
        except Exception as e:  # the broker is down: try again later
            LOG.warning(
                'Agent %s: sending %d results failed: %s',
                self.host,
                len(due),
                e,
            )
            return -1
        self.journal.mark_sent(keys)
        return len(due)

    def _outbox_loop(self):
        failed = False
        while not self._stop.is_set():
            # Asleep until a result comes in or one is due again (a wakeup
            # a second was most of an idle agent's CPU), and at least a
            # second after a failed send.
            wait = self.journal.next_resend(
                self.conf.agent.result_resend_interval
            )
            wait = OUTBOX_IDLE_WAIT if wait is None else wait
            if failed:
                wait = max(wait, 1.0)
            if self._outbox_event.wait(timeout=wait):
                # Results come in bursts (a plugin a few ms): one message
                # for the burst instead of one per result.
                time.sleep(OUTBOX_COALESCE)
            self._outbox_event.clear()
            sent = 1
            while sent > 0:
                sent = self._send_due()
            failed = sent < 0

    def _flush_outbox(self, timeout):
        deadline = time.monotonic() + timeout
        while self.journal.unacked_count() and time.monotonic() < deadline:
            self._outbox_event.set()
            time.sleep(0.1)

    def heartbeat_payload(self, state='up'):
        return {
            'host': self.host,
            # 'stopped' when the agent stops cleanly: left out of new runs.
            'state': state,
            'roles': self.roles,
            'version': version.VERSION,
            'activity': self.manager.activity,
            # The daemon refuses a run this node would refuse, at plan time.
            'allowed_sources': self.runner.settings.allowed_sources,
            # Which library this node's plugins run with ('' standalone).
            'devstack_dir': self.runner.settings.devstack_dir,
        }

    def _say_stopped(self):
        """A clean stop says so: new runs leave this node out at once."""
        try:
            self.daemon.heartbeat({}, self.heartbeat_payload('stopped'))
        except Exception as e:
            LOG.warning('Agent %s: saying it stops failed: %s', self.host, e)

    def _heartbeat_loop(self):
        while not self._stop.is_set():
            interval = self.conf.agent.heartbeat_interval
            try:
                self.daemon.heartbeat({}, self.heartbeat_payload())
                self.broker.ok()
            except Exception as e:
                LOG.warning('Agent %s: heartbeat failed: %s', self.host, e)
                interval = min(interval, 2)  # retry sooner after an error
            self._stop.wait(interval * random.uniform(0.9, 1.0))

    def _catch_up(self):
        """Ask for the phase this node missed while it was away."""
        delay = 0.2
        while not self._stop.is_set():
            try:
                events = self.daemon.pending_work({})
                break
            except Exception as e:
                LOG.debug(
                    'Agent %s: asking for pending work failed: %s',
                    self.host,
                    e,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 5)
        else:
            return
        if self._stop.is_set():
            return
        for envelope in events:
            self.manager.accept(envelope)
