"""tests.base.TestCase: its own options, every one registered."""

from tests import base


class TestBase(base.TestCase):
    def test_every_option_has_its_default(self):
        self.assertEqual(self.conf.daemon.role_order, ['controller', '*'])
        self.assertEqual(self.conf.agent.allowed_sources, [])

    def test_flags_override_options(self):
        default = self.conf.daemon.phase_timeout
        self.flags(phase_timeout=default + 5, group='daemon')
        self.assertEqual(self.conf.daemon.phase_timeout, default + 5)
        self.flags(host='n9')
        self.assertEqual(self.conf.host, 'n9')
