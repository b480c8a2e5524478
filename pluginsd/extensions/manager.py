"""Find and load extensions (stevedore namespace ``pluginsd.extensions``)."""

import logging
import traceback

from stevedore import extension as sv_extension
from stevedore import named as sv_named

from pluginsd import exception

LOG = logging.getLogger(__name__)
NAMESPACE = 'pluginsd.extensions'


def _record(name, state, reason='', obj=None, entry_point=''):
    return {
        'name': name,
        'state': state,
        'reason': reason,
        'entry_point': entry_point,
        'version': getattr(obj, 'version', '') or '',
        'description': getattr(obj, 'description', '') or '',
    }


def register_extension_opts(conf, cls):
    list_opts = getattr(cls, 'list_opts', None)
    if not list_opts:
        return
    for group, opts in list_opts().items():
        conf.register_opts(opts, group=group)


def load(conf):
    """Return (extension objects, records); records say what failed and why."""
    records, failed = [], []

    def on_failure(_manager, entry_point, error):
        reason = ''.join(
            traceback.format_exception_only(type(error), error)
        ).strip()
        LOG.error(
            'Extension %s (%s) failed to load: %s',
            entry_point.name,
            entry_point.value,
            reason,
            exc_info=error,
        )
        records.append(
            _record(
                entry_point.name,
                'failed',
                reason,
                entry_point=entry_point.value,
            )
        )
        failed.append(entry_point.name)

    def on_missing(names):
        for name in sorted(names):
            LOG.error(
                'Extension %s is in [extensions] enabled but not installed',
                name,
            )
            records.append(
                _record(
                    name,
                    'failed',
                    f'not installed (no entry point {name} in {NAMESPACE})',
                )
            )
            failed.append(name)

    # Created by hand, not by stevedore, so that an extension's options are
    # registered before its constructor reads them.
    common = dict(
        namespace=NAMESPACE,
        invoke_on_load=False,
        on_load_failure_callback=on_failure,
    )
    if conf.extensions.enabled:
        manager = sv_named.NamedExtensionManager(
            names=conf.extensions.enabled,
            name_order=True,
            on_missing_entrypoints_callback=on_missing,
            **common,
        )
    else:
        manager = sv_extension.ExtensionManager(**common)

    loaded = []
    for ext in manager:
        value = ext.entry_point.value
        try:
            register_extension_opts(conf, ext.plugin)
            obj = ext.plugin(conf)
            obj.name = getattr(obj, 'name', None) or ext.name
        except Exception as error:
            on_failure(manager, ext.entry_point, error)
            continue
        loaded.append(obj)
        records.append(_record(obj.name, 'loaded', obj=obj, entry_point=value))
        LOG.info('Extension %s %s loaded (%s)', obj.name, obj.version, value)
    if failed and conf.extensions.fail_on_error:
        raise exception.ConfigError(
            reason=f'extensions failed to load: {", ".join(failed)} '
            '([extensions] fail_on_error is set)'
        )
    return loaded, records


def list_opts():
    """Options of every installed extension, for the sample config."""
    groups = {}
    for ext in sv_extension.ExtensionManager(NAMESPACE, invoke_on_load=False):
        list_opts = getattr(ext.plugin, 'list_opts', None)
        if list_opts:
            for group, opts in list_opts().items():
                groups.setdefault(group, []).extend(opts)
    return groups


def migration_locations(extensions):
    return [
        ext.migrations
        for ext in extensions
        if getattr(ext, 'migrations', None)
    ]
