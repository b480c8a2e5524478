import sys

from pluginsd import rpc
from pluginsd import service
from pluginsd.agent import service as agent_service


def _main():
    conf = service.prepare(sys.argv[1:], 'pluginsd-agent')
    transport = rpc.get_transport(conf)
    return service.serve(conf, agent_service.AgentService(conf, transport))


def main():
    service.run_main(_main)
