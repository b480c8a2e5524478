"""The all-in-one mode: the daemon and one agent in this process.

They talk over the embedded in-process transport (``kombu+memory:////``)
through exactly the RPC code a multi-node deployment uses over RabbitMQ,
with SQLite state under ``state_path``. The plugins are cloned straight
into ``$DEST/<name>``, as DevStack does.
"""

import logging
import secrets

from pluginsd import rpc
from pluginsd.agent import service as agent_service
from pluginsd.daemon import service as daemon_service
from pluginsd.rpc import memory


class AllInOne:
    def __init__(self, conf):
        if not conf.security.shared_key:
            # Both ends live in this process: a key of the moment will do.
            conf.set_override(
                'shared_key', secrets.token_hex(32), group='security'
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
        )
        # The user runs their own local.conf on their own machine: every
        # source it names is allowed.
        self.agent = agent_service.AgentService(
            conf, self.transport, allow_any_source=True
        )

    def start(self):
        self.daemon.start()
        self.agent.start()

    def stop(self):
        self.agent.stop(graceful_timeout=0)
        self.daemon.stop()
        self.transport.cleanup()
