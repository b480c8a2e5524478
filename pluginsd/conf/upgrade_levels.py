from oslo_config import cfg

GROUP = cfg.OptGroup('upgrade_levels', title='RPC version pins')
OPTS = [
    cfg.StrOpt('agent', help='Highest agent RPC API version the daemon sends '
                             '(pin it during a rolling upgrade).'),
    cfg.StrOpt('daemon', help='Highest daemon RPC API version agents and the '
                              'CLI send.'),
]


def register_opts(conf):
    # A fresh OptGroup per ConfigOpts: oslo.config keeps overrides on the
    # group object, so a shared one would leak them between configs.
    conf.register_group(cfg.OptGroup(GROUP.name, title=GROUP.title))
    conf.register_opts(OPTS, group=GROUP.name)


def list_opts():
    return {GROUP: OPTS}
