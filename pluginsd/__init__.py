"""pluginsd: DevStack-style plugins run across many nodes."""

import sys

from oslo_service import backend as _oslo_service_backend

# pluginsd runs on native threads only: every RPC server runs
# oslo.messaging's threading executor, and oslo.service (which
# oslo.messaging imports) gets its threading backend. eventlet is still
# installed, as oslo.service requires it, and futurist imports it wherever
# it is installed: 17 MB of every agent's memory for nothing. Refusing the
# import keeps it out of the process. A program that loaded eventlet or
# chose oslo.service's backend before importing pluginsd keeps its choice:
# pluginsd uses no oslo.service component itself.
sys.modules.setdefault('eventlet', None)
try:
    _oslo_service_backend.init_backend(
        _oslo_service_backend.BackendType.THREADING
    )
except _oslo_service_backend.exceptions.BackendAlreadySelected:
    pass
