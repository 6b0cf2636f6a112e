"""Lab tests need root and Open vSwitch; they fail (never skip) without them: CI installs both."""

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs root, network namespaces and Open vSwitch")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call":
        for name in ("l2", "fw"):
            env = item.funcargs.get(name)
            lab = getattr(env, "lab", None)
            if lab is not None:
                dumps = "\n".join(hv.debug_dump() for hv in lab.hvs.values())
                report.sections.append(("lab state", dumps[-20000:]))
                dvn = getattr(env, "dvn", None)
                if dvn is not None:
                    report.sections.append(("dvn log", dvn.log()[-20000:]))
