"""Output formats of pluginsctl that differ from cliff's own."""

import re
import shlex

from cliff import columns
from cliff.formatters import shell

from pluginsd.cmd.cli import common

NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')


class SafeShellFormatter(shell.ShellFormatter):
    """``-f shell`` that ``eval`` can take: every value single-quoted.

    cliff's shell format puts values in double quotes, where ``$(...)`` and
    backticks from a plugin's output would run. Here values are quoted with
    shlex.quote and variable names are checked, so ``eval "$(pluginsctl run
    status RUN -f shell)"`` only ever assigns variables.
    """

    def emit_one(self, column_names, data, stdout, parsed_args):
        prefix = parsed_args.prefix or ''
        if prefix and not NAME.match(prefix):
            raise common.UsageError(
                f'--prefix {prefix!r}: expected a shell variable name '
                '(letters, digits, _)'
            )
        wanted = parsed_args.variables
        for column, value in zip(column_names, data, strict=True):
            name = re.sub(r'[^A-Za-z0-9_]', '_', column.lower())
            if wanted and name not in wanted:
                continue
            if isinstance(value, columns.FormattableColumn):
                value = value.machine_readable()
            if value is None:
                value = ''
            elif isinstance(value, (list, tuple)):
                value = ','.join(str(v) for v in value)
            stdout.write(f'{prefix}{name}={shlex.quote(str(value))}\n')
