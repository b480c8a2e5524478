"""Configuration: every option group of pluginsd, registered on demand.

Options are registered on the ``ConfigOpts`` object a caller passes in, never
at import time, so tests and the all-in-one mode can each have their own.
"""

from oslo_config import cfg

from pluginsd.conf import agent
from pluginsd.conf import daemon
from pluginsd.conf import database
from pluginsd.conf import default
from pluginsd.conf import extensions
from pluginsd.conf import runner
from pluginsd.conf import security
from pluginsd.conf import upgrade_levels

MODULES = (
    default,
    daemon,
    agent,
    runner,
    security,
    database,
    upgrade_levels,
    extensions,
)


def register_all(conf):
    """Register every pluginsd option group on ``conf``."""
    for module in MODULES:
        module.register_opts(conf)
    _register_oslo_messaging_workaround(conf)
    return conf


def _register_oslo_messaging_workaround(conf):
    # oslo.messaging 18.x registers its tracing and metrics options on the
    # global cfg.CONF only, yet RPCClient reads them from the conf it was
    # given; without this a private ConfigOpts fails on the first call.
    from oslo_messaging._metrics import client as metrics_client
    from oslo_messaging._tracing import client as tracing_client

    for group, opts in (
        ('oslo_messaging_tracing', tracing_client.oslo_messaging_tracing),
        ('oslo_messaging_metrics', metrics_client.oslo_messaging_metrics),
    ):
        try:
            conf.register_opts(opts, group=group)
        except cfg.DuplicateOptError:
            pass


def new_conf():
    """A fresh ConfigOpts with every pluginsd option registered."""
    return register_all(cfg.ConfigOpts())
