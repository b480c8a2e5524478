"""The pluginsd daemon service: database, RPC server, runs, node watch."""

import logging
import threading

from pluginsd import keys
from pluginsd import rpc
from pluginsd import service
from pluginsd.agent import rpcapi as agent_rpcapi
from pluginsd.daemon import manager
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
    ):
        self.conf = conf
        self.extensions, self.extension_records = ext_manager.load(conf)
        self.db = db_api.Database(conf.database.connection)
        self.db.upgrade(ext_manager.migration_locations(self.extensions))
        self.keypair = keypair or keys.KeyPair.load_or_create(
            conf.security.key_file
        )
        self.signer = signing.Signer(self.keypair, 'daemon')
        self.verifier = signing.Verifier(
            trust.DaemonKeyring(conf, self.db, self.keypair),
            signing.ReplayGuard(self.db, conf.security.max_message_age),
            conf.security.max_message_age,
            where='daemon',
        )
        self.events = dispatch.EventDispatcher(
            self.extensions, dispatch.Notifications(conf, notification_url)
        )
        self.nodes = runs.NodeTracker(conf, self.db)
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
        self.server = rpc.get_server(
            transport, rpc.DAEMON_TOPIC, conf.host, [self.manager]
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
        self.server.start()
        self.runs.resume_all()
        self._watch.start()
        LOG.info(
            'pluginsd daemon started on %s, key %s',
            self.conf.host,
            self.keypair.fingerprint,
        )

    def stop(self):
        LOG.info('pluginsd daemon stopping')
        self._stop.set()
        self.server.stop()
        self.runs.stop()
        self.server.wait()
        self._watch.join(timeout=5)
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
                nodes = self.db.list_nodes()
            except Exception as e:  # the database is away: try again
                LOG.warning('Listing nodes failed: %s', e)
                continue
            for node in nodes:
                host = node['host']
                if self.nodes.is_lost(host) and host not in lost:
                    lost.add(host)
                    LOG.warning(
                        'Node %s lost: no heartbeat for %s s',
                        host,
                        self.conf.daemon.agent_down_time,
                    )
                    self.events.node_lost(node)
                elif not self.nodes.is_lost(host):
                    lost.discard(host)
