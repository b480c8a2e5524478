"""Base class for unittest-style tests (oslotest), with pluginsd's options.

pytest runs these as it runs plain test functions; use them where a test
wants oslotest's fixtures (timeouts, captured logging, temp dirs) or
options set per test::

    class TestThing(base.TestCase):
        def test_x(self):
            self.flags(host='n1')
            self.flags(phase_timeout=5, group='daemon')
"""

from oslo_config import fixture as config_fixture
from oslotest import base

from pluginsd import conf as pluginsd_conf


class TestCase(base.BaseTestCase):
    """A test with its own ConfigOpts, every pluginsd option registered.

    ``self.conf`` is parsed from no file and no arguments, so every option
    has its default; ``self.flags()`` overrides some for this test only
    (the config fixture undoes it at cleanup).
    """

    def setUp(self):
        super().setUp()
        conf = pluginsd_conf.new_conf()
        conf([], project='pluginsd', default_config_files=[])
        self.config_fixture = self.useFixture(config_fixture.Config(conf))
        self.conf = conf

    def flags(self, group=None, **overrides):
        """Override options for this test: ``flags(key=value, group=...)``."""
        self.config_fixture.config(group=group, **overrides)
