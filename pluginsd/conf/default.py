import socket

from oslo_config import cfg

OPTS = [
    cfg.StrOpt(
        'state_path',
        default='/var/lib/pluginsd',
        help='Directory where pluginsd keeps its state: database, '
        'plugin cache, journals and logs.',
    ),
    cfg.StrOpt(
        'host',
        default=socket.gethostname(),
        sample_default='<hostname>',
        help='Name of this node. Agents are addressed by it and it '
        'names the node in every result.',
    ),
    cfg.IntOpt(
        'broker_down_exit_after',
        default=300,
        min=0,
        mutable=True,
        help='Exit with status 1 (so that systemd restarts the service) '
        'after the message broker has been unreachable this many '
        'seconds, instead of hanging. 0: never.',
    ),
]


def register_opts(conf):
    conf.register_opts(OPTS)


def list_opts():
    return {'DEFAULT': OPTS}
