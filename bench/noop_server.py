"""The idle daemon's floor: an oslo.messaging RPC server that does nothing.

Same transport options and executor as the daemon (threading), one no-op
``heartbeat`` method; the benchmark casts heartbeat-sized envelopes to it
at the rate the daemon receives them and reports its CPU beside the
daemon's. Usage: noop_server.py CONFIG_FILE TOPIC
"""

import sys
import threading

# pluginsd first, as in the daemon: it selects oslo.service's threading
# backend before oslo.messaging would load eventlet.
import pluginsd  # noqa: F401

# isort: split
import oslo_messaging as messaging

from pluginsd import conf as pluginsd_conf
from pluginsd import rpc


class NoopEndpoint:
    target = messaging.Target(version=rpc.DAEMON_API_VERSION)

    @rpc.expose
    def heartbeat(self, ctxt, envelope):
        pass


def main():
    conf = pluginsd_conf.new_conf()
    conf(['--config-file', sys.argv[1]], project='pluginsd')
    transport = rpc.get_transport(conf)
    server = rpc.get_server(transport, sys.argv[2], 'noop', [NoopEndpoint()])
    server.start()
    print('READY', flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    main()
