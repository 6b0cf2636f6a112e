"""dvn's `[dvn]` options in os-ken's configuration (controller/options.py) become
the same Settings that `dvn serve`'s command line gives (controller/serve.py)."""

import pytest
from oslo_config import cfg

from controller import options, serve
from flows import fields


def _conf(tmp_path, text):
    path = tmp_path / "dvn.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    conf.register_cli_opt(cfg.IntOpt("ofp-tcp-listen-port"))  # os-ken's (os_ken.controller.controller)
    conf(args=["--config-file", str(path)])
    return conf


def test_defaults_are_serves_but_without_lanes(tmp_path):
    got = options.settings(_conf(tmp_path, "[dvn]\nstate_dir = /tmp/x\n"))
    assert got == serve.Settings(state_dir="/tmp/x", openflow_port=6653, openflow_lanes=0)
    assert got.api_listen == "127.0.0.1:8080" and got.nb is None and got.identity_option == fields.IDENTITY


def test_every_option_reaches_the_settings(tmp_path):
    conf = _conf(tmp_path, "\n".join([
        "[DEFAULT]", "ofp_tcp_listen_port = 7000", "[dvn]", "nb = tcp:192.0.2.5:6641", "state_dir = /srv/dvn", "api_listen =", "ovsdb_listen = 192.0.2.1:6640",
        "openflow_lanes = 2", "log_rate = 7", "identity_option = 0xfff2:0x3", "ipsec_auth = ca", "stop_nb = true",
        "tls = true", "tls_cert = /etc/dvn/api.pem", "tls_key = /etc/dvn/api-key.pem", "tls_names = dvn.example, 192.0.2.1",
    ]))
    got = options.settings(conf)
    assert got == serve.Settings(state_dir="/srv/dvn", nb="tcp:192.0.2.5:6641", api_listen=None,
                                 ovsdb_listen="192.0.2.1:6640", openflow_port=7000, openflow_lanes=2, log_rate=7,
                                 identity_option=serve.identity_option("0xfff2:0x3"), ipsec_auth="ca", stop_nb=True,
                                 tls=True, tls_cert="/etc/dvn/api.pem", tls_key="/etc/dvn/api-key.pem",
                                 tls_names=("dvn.example", "192.0.2.1"))
    assert (got.identity_option.opt_class, got.identity_option.opt_type) == (0xFFF2, 3)


def test_a_bad_identity_option_names_the_option(tmp_path):
    with pytest.raises(ValueError, match=r"\[dvn\] identity_option"):
        options.settings(_conf(tmp_path, "[dvn]\nidentity_option = nonsense\n"))
