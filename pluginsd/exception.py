"""pluginsd's exceptions. Each message names what is wrong and where."""

import re


class PluginsdException(Exception):
    msg_fmt = 'An unknown error occurred.'

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            message = self.msg_fmt % kwargs
        super().__init__(message)


class LocalConfError(PluginsdException):
    msg_fmt = '%(path)s:%(line)s: %(reason)s'


class FetchError(PluginsdException):
    msg_fmt = 'plugin %(plugin)s (%(url)s %(ref)s): %(reason)s'

    def __init__(self, message=None, **kwargs):
        # A URL may carry credentials (https://user:token@host/...).
        if 'url' in kwargs:
            kwargs['url'] = redact_url(kwargs['url'])
        if 'reason' in kwargs:
            kwargs['reason'] = re.sub(
                r'://[^/@\s]+@', '://***@', kwargs['reason']
            )
        super().__init__(message, **kwargs)


def without_traceback(text):
    """An error's text without the traceback a remote error carries."""
    return str(text).split('\nTraceback (most recent call last)')[0].strip()


def redact_url(url):
    return re.sub(r'://[^/@\s]+@', '://***@', str(url))


class SettingsError(PluginsdException):
    msg_fmt = '%(reason)s'


class OrderError(PluginsdException):
    msg_fmt = '%(reason)s'


class ConfigError(PluginsdException):
    msg_fmt = 'configuration: %(reason)s'


class RunNotFound(PluginsdException):
    msg_fmt = 'no run %(run)s'


class DuplicateRun(PluginsdException):
    msg_fmt = 'a run %(run)s exists already'


class RunStateError(PluginsdException):
    msg_fmt = 'run %(run)s is %(state)s: %(reason)s'


class NodesBusy(PluginsdException):
    msg_fmt = (
        'node(s) %(nodes)s busy with run %(run)s (%(mode)s, %(state)s): '
        'wait for it to end, or cancel it (pluginsctl run cancel %(run)s)'
    )


class SignatureError(PluginsdException):
    msg_fmt = 'rejected message from %(sender)s: %(reason)s'


class StaleMessage(SignatureError):
    """Signed too long ago: the sender may sign it again and resend."""


class NotAuthorized(PluginsdException):
    msg_fmt = '%(who)s may not call %(op)s (needs %(needed)s)'
