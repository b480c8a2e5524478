"""Entry point for oslo-config-generator and the Sphinx config extension."""

from pluginsd import conf as pluginsd_conf


def list_opts():
    groups = {}
    for module in pluginsd_conf.MODULES:
        for group, opts in module.list_opts().items():
            groups.setdefault(group, []).extend(opts)
    return [(group, opts) for group, opts in groups.items()]
