"""Several simulated nodes in one process, for the benchmark.

Each node is a full AgentService: its own host name, RPC queue, DEST,
state directory and bash sessions; they only share the process.
Usage: agent_host.py CONFIG_FILE PREFIX COUNT BASE_DIR
"""

import os
import signal
import sys
import threading

from pluginsd import conf as pluginsd_conf
from pluginsd import keys
from pluginsd import rpc
from pluginsd.agent import service as agent_service

# Broker connections a node sends on at once in a run: its heartbeat, its
# result outbox and its worker's calls (local.conf, bundle pieces).
POOL_PER_NODE = 3


def warm_pool(transport, size):
    """Open the connections the nodes will send on now, one after another.

    A real node opens its three on its own CPU when its first run starts;
    25 simulated nodes in one process, 500 on two cores, would open 1500
    at the same instant and time out each other's handshakes (measured:
    over 4000 "Connection failed: timed out" in 7 minutes, the first phase
    not done). oslo.messaging has no public way to fill its pool, so this
    reaches into the driver: benchmark code only.
    """
    held = [transport._driver._get_connection() for _ in range(size)]
    for connection in held:
        connection.close()  # back into the pool, open


def main():
    conf_file, prefix, count, base = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        sys.argv[4],
    )
    conf = pluginsd_conf.new_conf()
    conf(['--config-file', conf_file], project='pluginsd')
    # One transport for all: connections enough for every node's threads
    # (RPC workers, heartbeat, outbox, its run), as each has on its own.
    rpc.size_reply_pool(conf, count * (conf.agent.rpc_workers + 3))
    transport = rpc.get_transport(conf)
    warm_pool(transport, count * POOL_PER_NODE)
    agents = []
    for i in range(count):
        host = f'{prefix}{i:02d}'
        state = os.path.join(base, host)
        # Each node its own key, accepted in advance (automation).
        key = keys.KeyPair.load_or_create(
            os.path.join(state, 'keys', 'agent.key')
        )
        keys.private_write(
            os.path.join(conf.security.accepted_keys_dir, f'{host}.pub'),
            key.public,
        )
        agents.append(
            agent_service.AgentService(
                conf,
                transport,
                host=host,
                roles=['compute'],
                dest=os.path.join(state, 'dest'),
                state_dir=state,
                keypair=key,
            )
        )
    for agent in agents:
        agent.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print('READY', flush=True)
    stop.wait()
    for agent in agents:
        agent.stop(graceful_timeout=0)


if __name__ == '__main__':
    main()
