"""The flat command names of the previous release, kept one release.

Each works as before under its new name and says so on stderr.
"""

from pluginsd.cmd.cli import common
from pluginsd.cmd.cli import node
from pluginsd.cmd.cli import run

Runs = common.deprecated_alias(run.RunList, 'runs', 'run list')
Show = common.deprecated_alias(run.RunShow, 'show', 'run show')
Status = common.deprecated_alias(run.RunStatus, 'status', 'run status')
Retry = common.deprecated_alias(run.RunRetry, 'retry', 'run retry')
Cancel = common.deprecated_alias(run.RunCancel, 'cancel', 'run cancel')
Delete = common.deprecated_alias(run.RunDelete, 'delete', 'run delete')
Logs = common.deprecated_alias(run.RunLogs, 'logs', 'run logs')
Report = common.deprecated_alias(run.RunReport, 'report', 'run report')
Nodes = common.deprecated_alias(node.NodeList, 'nodes', 'node list')
