from oslo_config import cfg

GROUP = cfg.OptGroup('extensions', title='Extensions (stevedore)')
OPTS = [
    cfg.ListOpt('enabled', default=[],
                help='Extensions to load, in this order, by entry point name '
                     '(namespace pluginsd.extensions). Empty: every installed '
                     'extension.'),
    cfg.BoolOpt('fail_on_error', default=False,
                help='Refuse to start when an extension cannot be loaded '
                     '(default: log it, show it as failed, go on).'),
]


def register_opts(conf):
    # A fresh OptGroup per ConfigOpts: oslo.config keeps overrides on the
    # group object, so a shared one would leak them between configs.
    conf.register_group(cfg.OptGroup(GROUP.name, title=GROUP.title))
    conf.register_opts(OPTS, group=GROUP.name)


def list_opts():
    return {GROUP: OPTS}
