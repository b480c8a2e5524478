"""pluginsctl's commands, one cliff class each.

They are registered as entry points in the ``pluginsd.cli`` namespace
(setup.cfg); an underscore in an entry point name is a space on the command
line (``run_list`` is ``pluginsctl run list``), as in python-openstackclient.
"""
