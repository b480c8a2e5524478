"""The embedded transport of the all-in-one mode, minus its busy loop.

oslo.messaging drives ``memory://`` with a polling interval of 0 ("to
speed up tests"), so every consumer thread spins and starves the others of
the GIL. This kombu transport is the same in-memory broker with a short
sleep between empty polls.
"""

from kombu.transport import memory

POLL_SECONDS = 0.001


class Transport(memory.Transport):
    @property
    def polling_interval(self):
        return POLL_SECONDS

    @polling_interval.setter
    def polling_interval(self, _value):
        pass  # keep ours: oslo.messaging sets 0.0


def install():
    from kombu import transport

    transport.TRANSPORT_ALIASES['memory'] = 'pluginsd.rpc.memory:Transport'
