"""The base class of pluginsd extensions.

An extension is a Python class registered under the entry point namespace
``pluginsd.extensions`` of any installed distribution::

    [options.entry_points]
    pluginsd.extensions =
        audit = pluginsd_audit:AuditExtension

The daemon finds every installed extension when it starts (a new one needs
a restart), creates it with the daemon's ``ConfigOpts`` and calls its
``on_*`` methods as things happen. Each method does nothing here; override
the ones you need. An exception in a handler is logged with the
extension's name and stops neither the other extensions nor the run.

An extension may also have:

* ``list_opts()`` (a classmethod or staticmethod returning
  ``{group: [opts]}``): its options, registered before it is created and
  shown in the generated sample configuration;
* ``migrations``: the directory of its own Alembic migration branch (its
  first revision has ``down_revision = None`` and a ``branch_labels``
  naming the extension), applied by ``pluginsd-manage db upgrade``.

Event data are plain objects, documented in :mod:`pluginsd.extensions.events`.
"""


class Extension:
    #: Short, user-facing name (defaults to the entry point name).
    name = None
    #: Version of the extension.
    version = '0.0.0'
    #: One line saying what it does (``pluginsctl extension list``).
    description = ''
    #: Directory of the extension's Alembic migration branch, if any.
    migrations = None

    def __init__(self, conf):
        self.conf = conf

    def on_node_register(self, node):
        """A node's first heartbeat. ``node``: :class:`events.Node`."""

    def on_node_update(self, node):
        """A lost node is back. ``node``: :class:`events.Node`."""

    def on_node_lost(self, node):
        """A node missed heartbeats for agent_down_time."""

    def on_run_start(self, run):
        """A run was planned and is about to start.

        ``run``: :class:`events.Run`.
        """

    def on_phase_start(self, phase):
        """A phase event is about to go out.

        ``phase``: :class:`events.Phase`.
        """

    def on_plugin_result(self, result):
        """A node reported a plugin's result.

        ``result``: :class:`events.Result`.
        """

    def on_phase_end(self, phase):
        """Every node of the stage reported the phase (``phase.failures``)."""

    def on_run_end(self, run):
        """The run completed, failed or was cancelled (``run.state``)."""

    def on_run_delete(self, run):
        """A run was deleted from the database."""
