"""The pluginsd daemon service: database, RPC server, runs, node watch."""

import logging
import threading

from pluginsd import keys
from pluginsd import rpc
from pluginsd import service
from pluginsd.agent import rpcapi as agent_rpcapi
from pluginsd.daemon import manager
from pluginsd.daemon import nodes
from pluginsd.daemon import rpcapi as daemon_rpcapi
from pluginsd.daemon import runs
from pluginsd.daemon import trust
from pluginsd.db import api as db_api
from pluginsd.extensions import dispatch
from pluginsd.extensions import manager as ext_manager
from pluginsd.rpc import signing

LOG = logging.getLogger(__name__)
DEFAULT = object()


class DaemonService:
    def __init__(
        self,
        conf,
        transport,
        checkout_root=DEFAULT,
        notification_url=None,
        keypair=None,
        upgrade_schema=False,
    ):
        self.conf = conf
        self.extensions, self.extension_records = ext_manager.load(conf)
        self.db = db_api.Database(conf.database.connection)
        locations = ext_manager.migration_locations(self.extensions)
        if upgrade_schema:  # the all-in-one mode: its own private database
            self.db.upgrade(locations)
        # Otherwise the schema changes only through `pluginsd-manage db
        # upgrade`: other daemons may be using this database right now.
        self.db.check_schema(locations)
        self.keypair = keypair or keys.KeyPair.load_or_create(
            conf.security.key_file
        )
        self.signer = signing.Signer(self.keypair, 'daemon')
        replays = signing.ReplayGuard(self.db, conf.security.max_message_age)
        self.verifier = signing.Verifier(
            trust.DaemonKeyring(conf, self.db, self.keypair),
            replays,
            conf.security.max_message_age,
            where='daemon',
            # Their marks are stored with their effect, not one write per
            # message: the heartbeats' with their times, once a second
            # (NodeTracker.flush); results' with the results, in one
            # transaction per batch (RunManager.on_results); those of
            # what changes nothing with the heartbeats' (trust.READ_ONLY).
            deferred=('heartbeat', 'probe', 'report_results')
            + tuple(trust.READ_ONLY),
        )
        self.events = dispatch.EventDispatcher(
            self.extensions, dispatch.Notifications(conf, notification_url)
        )
        self.nodes = nodes.NodeTracker(conf, self.db, self.events, replays)
        self.agents = agent_rpcapi.AgentAPI(conf, transport, self.signer)
        if checkout_root is DEFAULT:
            checkout_root = conf.daemon.plugins_dir
        self.runs = runs.RunManager(
            conf,
            self.db,
            self.agents,
            self.nodes,
            self.events,
            checkout_root,
            replays=replays,
        )
        self.manager = manager.DaemonManager(
            conf,
            self.db,
            self.runs,
            self.nodes,
            self.agents,
            self.verifier,
            self.events,
            self.extension_records,
        )
        self.liveness = manager.LivenessManager(self.manager)
        self.long_calls = manager.LongCallManager(self.manager)
        # Three lanes: heartbeats and results never wait behind anything
        # else; dry-run plans, log fetches and long polls never hold a
        # thread of the main lane. The main topic serves every method too,
        # for clients pinned below API 1.3 / 1.4 ([upgrade_levels]).
        self.server = rpc.get_server(
            transport, rpc.DAEMON_TOPIC, conf.host, [self.manager]
        )
        self.liveness_server = rpc.get_server(
            transport, rpc.LIVENESS_TOPIC, conf.host, [self.liveness]
        )
        self.long_call_server = rpc.get_server(
            transport, rpc.LONG_CALL_TOPIC, conf.host, [self.long_calls]
        )
        self._servers = (
            (self.liveness_server, conf.daemon.liveness_workers),
            (self.long_call_server, conf.daemon.long_call_workers),
            (self.server, None),  # [DEFAULT] executor_thread_pool_size
        )
        self._stop = threading.Event()
        self.broker = service.BrokerWatch(conf)
        self._probe_api = daemon_rpcapi.DaemonAPI(
            conf, transport, signer=self.signer
        )
        self._watch = threading.Thread(
            target=self._watch_nodes, daemon=True, name='node-watch'
        )

    def start(self):
        for server, pool_size in self._servers:
            server.start(override_pool_size=pool_size)
        self.runs.start()  # its tick resumes the runs left active
        self._watch.start()
        LOG.info(
            'pluginsd daemon started on %s, key %s',
            self.conf.host,
            self.keypair.fingerprint,
        )

    def stop(self):
        LOG.info('pluginsd daemon stopping')
        self._stop.set()
        rpc.stop_servers([server for server, _ in self._servers])
        self.runs.stop()
        for server, _ in self._servers:
            server.wait()
        self._watch.join(timeout=5)
        try:
            self.nodes.flush()  # the last second's heartbeats and marks
        except Exception as e:
            LOG.warning('Storing the last heartbeats failed: %s', e)
        self.events.stop()
        self.db.engine.dispose()

    def _probe_broker(self):
        try:
            self._probe_api.probe({}, self.conf.host)
            self.broker.ok()
        except Exception as e:
            LOG.warning('The message broker is unreachable: %s', e)

    def _watch_nodes(self):
        lost = set()
        while not self._stop.wait(1.0):
            self._probe_broker()
            try:
                self.verifier.keyring.reload()  # revocations by any daemon
                unwell = self.nodes.unwell()
            except Exception as e:  # the database is away: try again
                LOG.warning('Listing nodes failed: %s', e)
                continue
            now_lost = {
                host
                for host, (state, _node) in unwell.items()
                if state == nodes.LOST
            }
            for host in sorted(now_lost - lost):  # news once per loss
                LOG.warning(
                    'Node %s lost: no heartbeat for %s s',
                    host,
                    self.conf.daemon.agent_down_time,
                )
                self.events.node_lost(unwell[host][1])
            lost = now_lost  # bounded by the number of nodes
