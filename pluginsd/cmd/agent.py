import sys

from pluginsd import rpc
from pluginsd import service
from pluginsd.agent import service as agent_service


def _main():
    conf = service.prepare(sys.argv[1:], 'pluginsd-agent')
    rpc.size_send_pool(
        conf, conf.agent.rpc_workers + agent_service.SENDING_THREADS
    )
    transport = rpc.get_transport(conf)
    agent = agent_service.AgentService(conf, transport)
    rpc.open_send_pool(conf, transport)  # as the daemon does
    return service.serve(conf, agent)


def main():
    service.run_main(_main)
