"""Several simulated nodes in one process, for the benchmark.

Each node is a full AgentService: its own host name, RPC queue, DEST,
state directory and bash sessions; they only share the process.
Usage: agent_host.py CONFIG_FILE PREFIX COUNT BASE_DIR
Their log: BASE_DIR/PREFIXs.log (bench.py --keep keeps it).
"""

import os
import signal
import sys
import threading

from oslo_log import log as logging

from pluginsd import keys
from pluginsd import rpc
from pluginsd import service
from pluginsd.agent import service as agent_service

# How long a thread that wants the GIL waits before it asks the holder to
# let go (CPython's default: 5 ms). 25 nodes share this interpreter, about
# 200 threads, and a phase event wakes most of them at once: at 5 ms each
# waiting thread wakes 200 times a second for nothing, and at 500 nodes on
# two cores that kept hundreds of threads runnable (load average 300-600,
# half the CPU in the kernel). A real node is one agent, about ten threads,
# in a process of its own.
SWITCH_INTERVAL = 0.05
# Threads of a node that send at once during a run, besides its RPC
# workers: heartbeat, result outbox, the phase's calls (local.conf, bundle
# pieces).
SENDING_THREADS = 3


def main():
    sys.setswitchinterval(SWITCH_INTERVAL)
    conf_file, prefix, count, base = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        sys.argv[4],
    )
    # As pluginsd-agent starts (umask, oslo.messaging defaults, logging),
    # but logging to a file of this process's own in the work directory
    # (the config file's log_file is the daemon's).
    conf = service.prepare(
        ['--config-file', conf_file], 'agent_host', setup_logging=False
    )
    os.makedirs(base, exist_ok=True)
    conf.set_override('log_file', os.path.join(base, f'{prefix}s.log'))
    logging.setup(conf, 'pluginsd')
    # One transport for all: connections enough for every node's threads
    # (RPC workers and its senders), as each has on its own, and each
    # node's senders opened now, as the daemon does (one after
    # another: 25 nodes opening theirs at the same instant on two cores
    # would time out each other's handshakes).
    senders = SENDING_THREADS
    rpc.size_send_pool(
        conf, count * (conf.agent.rpc_workers + senders), keep=count * senders
    )
    transport = rpc.get_transport(conf)
    rpc.open_send_pool(conf, transport)
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
    service.freeze_startup_objects()  # as pluginsd.service.serve does
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print('READY', flush=True)
    stop.wait()
    # Together: one after another, the nodes' stops (each up to a few
    # seconds of flushing and of its listener's poll) add up to minutes.
    stoppers = [
        threading.Thread(target=agent.stop, kwargs={'graceful_timeout': 0})
        for agent in agents
    ]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()


if __name__ == '__main__':
    main()
