"""The green hub of dvn's server processes (`dvn serve`, osken-manager).

eventlet must patch everything before anything else is imported. Its green
DNS resolver is left out: it imports dnspython, which alone costs 12 MiB of
every controller's memory (of about 77 MiB idle) and prints deprecation
warnings, while dvn resolves names only at start-up (listen addresses, the
store's remote), where the system's resolver blocking the hub once does no
harm.
"""

import os


def patch():
    os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
    os.environ.setdefault("OSKEN_HUB_TYPE", "eventlet")
    import eventlet
    eventlet.monkey_patch()
