import sys

from pluginsd import rpc
from pluginsd import service
from pluginsd.daemon import runs
from pluginsd.daemon import service as daemon_service


def _main():
    conf = service.prepare(sys.argv[1:], 'pluginsd')
    # Three lanes reply (the main one and these two), and the run engine
    # sends acknowledgements from threads of its own.
    rpc.size_reply_pool(
        conf,
        conf.daemon.liveness_workers
        + conf.daemon.long_call_workers
        + runs.ACK_SENDERS,
    )
    transport = rpc.get_transport(conf)
    daemon = daemon_service.DaemonService(conf, transport)
    # After the checks of the database and keys (said even while the
    # broker is down), before the RPC servers: they wait for the broker too.
    rpc.open_send_pool(conf, transport)
    return service.serve(conf, daemon)


def main():
    service.run_main(_main)
