from oslo_config import cfg

GROUP = cfg.OptGroup('database', title='State database')
OPTS = [
    cfg.StrOpt('connection', secret=True,
               default='sqlite:///$state_path/pluginsd.sqlite',
               help='SQLAlchemy URL of the daemon database.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
