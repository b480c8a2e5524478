from oslo_config import cfg

GROUP = cfg.OptGroup('database', title='State database')
OPTS = [
    cfg.StrOpt('connection', secret=True,
               default='sqlite:///$state_path/pluginsd.sqlite',
               help='SQLAlchemy URL of the daemon database.'),
]


def register_opts(conf):
    # A fresh OptGroup per ConfigOpts: oslo.config keeps overrides on the
    # group object, so a shared one would leak them between configs.
    conf.register_group(cfg.OptGroup(GROUP.name, title=GROUP.title))
    conf.register_opts(OPTS, group=GROUP.name)


def list_opts():
    return {GROUP: OPTS}
