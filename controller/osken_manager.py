"""`osken-manager`: run os-ken apps by module name, as ryu-manager does.

os-ken 4.x ships no manager command any more (its ``os_ken/cmd`` is gone),
so dvn brings this small one, with ryu-manager's command line::

    osken-manager [--config-file FILE] [--verbose] [--log-file F] APP [APP ...]

    python -m controller.osken_manager --config-file dvn.conf controller.app my_app

It patches everything with eventlet before anything else is imported
(os-ken's own patch covers threads only, and its native hub loses
exceptions and never stops), reads the command line and the
configuration files into os-ken's ``CONF`` (apps register their options in
it, as controller.app does for ``[dvn]``), loads the apps with their
dependencies (os-ken's OpenFlow handler among them) and runs them until
SIGTERM or SIGINT, after which it closes every app.
"""

import os
import sys


def main(argv=None):
    from controller import hub
    hub.patch()
    import eventlet

    import logging

    from os_ken.base import app_manager  # before os_ken.controller.controller: a circular import otherwise
    from os_ken import cfg, log
    from os_ken import flags  # noqa: F401 (os-ken's shared command-line options, as ryu-manager has them)
    from os_ken.controller import controller  # noqa: F401 (the OpenFlow listener's options)
    from os_ken.lib import hub

    from controller import serve

    conf = cfg.CONF
    conf.register_cli_opts([
        cfg.ListOpt("app-lists", default=[], help="application module names to run"),
        cfg.MultiStrOpt("app", positional=True, default=[], help="application module name to run"),
        cfg.StrOpt("pid-file", default=None, help="write the process id to this file"),
    ])
    conf(args=sys.argv[1:] if argv is None else argv, prog="osken-manager", project="os_ken")
    log.init_log()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("osken-manager")
    if conf.pid_file:
        with open(conf.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())

    apps = conf.app_lists + conf.app or ["os_ken.controller.ofp_handler"]
    manager = app_manager.AppManager.get_instance()
    manager.load_apps(apps)
    contexts = manager.create_contexts()
    services = manager.instantiate_apps(**contexts)
    logger.info("running %s", ", ".join(apps))

    done = eventlet.event.Event()
    serve.install_stop_signals(done)

    def _until_services_end():
        hub.joinall(services)
        if not done.ready():
            done.send(None)
    hub.spawn(_until_services_end)
    try:
        done.wait()
    finally:
        manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
