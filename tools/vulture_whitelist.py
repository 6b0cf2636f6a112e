"""Names vulture (dead-code finder) cannot see used: called by a framework, by
name. Checked by tests/test_dead_code.py; vulture only parses this file."""
# flake8: noqa
# pyflakes: skip

_ = None

# os-ken finds the app class, its OpenFlow versions and its handlers itself.
_.DvnOpenFlow
_.OFP_VERSIONS
_._features           # @set_ev_cls(ofp_event.EventOFPSwitchFeatures)
_._state_change       # @set_ev_cls(ofp_event.EventOFPStateChange)

# python-ovs calls the IDL's notify(event, row, updates); ovsdbapp reads an API's lookup_table.
_.notify
_.updates
_.lookup_table

# pytest: hooks, module marks, fixtures asked for by name.
_.pytest_configure
_.pytest_runtest_makereport
_.pytestmark
_.backends            # tests/test_api_lb.py

# Decoded as the switch sends it (a flow's age), read by nobody yet.
_.duration_sec

# tests/test_firewall_lab.py: a server kept for the module's IPv6 checks.
_.tcp6
