"""dvn's options in os-ken's configuration: the ``[dvn]`` group.

When osken-manager loads controller.app by name, dvn is configured as os-ken
apps are, from os-ken's ConfigOpts (``os_ken.cfg.CONF``), e.g.::

    [DEFAULT]
    ofp_listen_host = 192.0.2.1
    ofp_tcp_listen_port = 6653

    [dvn]
    nb = tcp:192.0.2.5:6641
    ovsdb_listen = 192.0.2.1:6640
    api_listen = 127.0.0.1:8080

The options mean what `dvn serve`'s options of the same names mean; the
OpenFlow listener is os-ken's own (``ofp_listen_host``,
``ofp_tcp_listen_port``), and dvn's lanes are on the ports after it.
"""

import os

from oslo_config import cfg

from flows import fields

GROUP = "dvn"

OPTS = [
    cfg.StrOpt("nb", help="The northbound store's OVSDB remote (e.g. tcp:HOST:6641, unix:PATH). "
                          "Unset: dvn starts its own standalone store in state_dir."),
    cfg.StrOpt("state_dir", default=os.environ.get("DVN_STATE_DIR", "/var/lib/dvn"),
               help="Where the embedded northbound store, the admin token and dvn's CA live."),
    cfg.StrOpt("api_listen", default="127.0.0.1:8080",
               help="HOST:PORT of dvn's REST API; empty: no REST API in this process."),
    cfg.StrOpt("ovsdb_listen", default="0.0.0.0:6640",
               help="HOST:PORT where nodes' OVSDB servers connect (`dvn join` sets the manager)."),
    cfg.IntOpt("openflow_lanes", default=0, min=0, max=8,
               help="More OpenFlow connections dvn accepts from each switch, on the ports after "
                    "ofp_tcp_listen_port, for large changes (`dvn join --openflow-lanes` must say the "
                    "same). Default 0: under osken-manager the OpenFlow listener is os-ken's, and the "
                    "other apps would see every lane as one more connection of the switch."),
    cfg.IntOpt("log_rate", default=100, min=1,
               help="Packets per second each switch may send for logged firewall rules."),
    cfg.StrOpt("identity_option", default="0x%x:0x%x" % (fields.IDENTITY.opt_class, fields.IDENTITY.opt_type),
               help="CLASS:TYPE of the GENEVE option that carries the sender's security identity."),
    cfg.StrOpt("ipsec_auth", default="psk", choices=["psk", "ca"],
               help="How IPsec tunnels authenticate: pre-shared keys, or certificates from dvn's CA."),
    cfg.BoolOpt("stop_nb", default=False,
                help="Stop the embedded northbound store when dvn stops."),
    cfg.BoolOpt("tls", default=False,
                help="Serve the REST API over HTTPS with a certificate from dvn's CA (in state_dir), which "
                     "also admits nodes that join with a token. OpenFlow over TLS is os-ken's own: its "
                     "ctl_privkey, ctl_cert and ca_certs options (dvn's lanes follow them)."),
    cfg.StrOpt("tls_cert", help="The REST API's certificate (implies tls; default: one from dvn's CA)."),
    cfg.StrOpt("tls_key", help="The key of tls_cert."),
    cfg.ListOpt("tls_names", default=[],
                help="More host names and addresses for the certificate dvn's CA gives dvn."),
]


def register(conf):
    """Register the ``[dvn]`` group in ``conf`` (os-ken's CONF); idempotent."""
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    """For oslo-config-generator (a sample configuration file)."""
    return [(GROUP, OPTS)]


def settings(conf):
    """controller.serve.Settings from ``conf``; ValueError names a bad option."""
    from controller.serve import Settings, identity_option

    register(conf)
    opts = conf[GROUP]
    try:
        identity = identity_option(opts.identity_option)
    except ValueError as exc:
        raise ValueError("[dvn] identity_option: %s" % exc) from None
    return Settings(state_dir=opts.state_dir, nb=opts.nb or None, api_listen=opts.api_listen or None,
                    ovsdb_listen=opts.ovsdb_listen, openflow_port=conf.ofp_tcp_listen_port or 6653,
                    openflow_lanes=opts.openflow_lanes, log_rate=opts.log_rate, identity_option=identity,
                    ipsec_auth=opts.ipsec_auth, stop_nb=opts.stop_nb, tls=opts.tls, tls_cert=opts.tls_cert,
                    tls_key=opts.tls_key, tls_names=tuple(opts.tls_names))
