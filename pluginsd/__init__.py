"""pluginsd: DevStack-style plugins run across many nodes."""

import warnings

# oslo.messaging imports oslo.service, which loads eventlet as a side effect
# and warns that it is deprecated. pluginsd never uses eventlet (every RPC
# server runs the threading executor); keep the banner out of our output.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
