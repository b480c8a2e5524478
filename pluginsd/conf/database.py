from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup('database', title='State database')
OPTS = [
    cfg.StrOpt(
        'connection',
        secret=True,
        default='sqlite:///$state_path/pluginsd.sqlite',
        help='SQLAlchemy URL of the daemon database.',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
