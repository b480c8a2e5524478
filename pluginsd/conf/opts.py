"""Entry point for oslo-config-generator and the Sphinx config extension."""

from pluginsd import conf as pluginsd_conf


def list_opts():
    from pluginsd.extensions import manager

    groups = {}
    for module in pluginsd_conf.MODULES:
        for group, opts in module.list_opts().items():
            groups.setdefault(group, []).extend(opts)
    # Installed extensions' own options show up in the sample too.
    for group, opts in manager.list_opts().items():
        groups.setdefault(group, []).extend(opts)
    return [(group, opts) for group, opts in groups.items()]
