"""Names vulture (dead-code finder) cannot see used: called by a framework, by
name. Checked by tests/unit/test_dead_code.py; vulture only parses this file."""
# flake8: noqa
# pyflakes: skip

_ = None

# os-ken finds the app class, its OpenFlow versions and its handlers itself.
_.DvnOpenFlow
_.OtherApp            # tests/other_app.py, loaded by osken-manager beside dvn
_.OFP_VERSIONS
_._features           # @set_ev_cls(ofp_event.EventOFPSwitchFeatures)
_._state_change       # @set_ev_cls(ofp_event.EventOFPStateChange)
_._gone               # @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)

# oslo.config's entry point (setup.cfg: oslo.config.opts).
_.list_opts

# python-ovs calls the IDL's notify(event, row, updates) and a pending request's _process_reply;
# ovsdbapp reads an API's lookup_table and runs a transaction's do_commit.
_.notify
_.updates
_.lookup_table
_._process_reply
_.do_commit

# pytest: hooks, module marks, fixtures asked for by name.
_.pytest_configure
_.pytest_runtest_makereport
_.pytestmark
_.backends            # tests/store/test_api_lb.py

# Counted, read by nobody yet: a flow's age as the switch sends it, the
# merge conflicts the core has logged, the fake switch's messages and commits.
_.duration_sec
_.merge_conflicts
_.received
_.commits

# tests/lab/test_firewall_lab.py: a server kept for the module's IPv6 checks.
_.tcp6

# ovsdbapp calls a backend's create_transaction and a transaction's pre_commit;
# its add_br command fills the transaction's expected_ifaces (ovsdb/join.py).
_.create_transaction
_.pre_commit
_.expected_ifaces

# http.server calls a handler's do_POST and log_message (tests/lab/test_firewall_lab.py: the webhook receiver).
_.do_POST
_.log_message
